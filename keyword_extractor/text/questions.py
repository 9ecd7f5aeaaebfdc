"""Kiwi run on questions at inference time: their candidate spans, in batches, memoised.

Morpheme grounding needs every question's candidate spans (`morphology.candidate_spans`) before it is
decoded; Kiwi analyses a whole batch in one call, and a service sees the same questions again and again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from kiwipiepy import Token

from keyword_extractor.text.baselines import noun_phrases
from keyword_extractor.text.keywords import normalize
from keyword_extractor.text.morphology import candidate_spans, shared_kiwi
from keyword_extractor.text.span_features import ParsedQuestion


class QuestionAnalyser:
    """Questions analysed by Kiwi in batches (the process's shared Kiwi: it loads in seconds).

    Results are memoised per normalised question (repeated questions are common in serving), up to
    `cache_size` questions. `num_workers`: Kiwi's threads, 1 or more, or -1 for all cores.
    """

    def __init__(self, num_workers: int = 1, cache_size: int = 16384) -> None:
        self.kiwi = shared_kiwi(num_workers)
        self.cache_size = cache_size
        self._cache: dict[str, ParsedQuestion] = {}
        self._lock = threading.Lock()  # the cache, read and written by the service's worker threads

    def analyse(self, texts: Sequence[str]) -> list[list[Token]]:
        """Kiwi's tokens of each already-normalised text, in one batch call; empty texts get none."""
        todo = [index for index, text in enumerate(texts) if text]
        analysed: list[list[Token]] = [[] for _ in texts]
        results = self.kiwi.tokenize([texts[index] for index in todo])
        for index, tokens in zip(todo, results, strict=True):
            analysed[index] = tokens
        return analysed

    def parse_batch(self, questions: Iterable[str]) -> list[ParsedQuestion]:
        """Each question normalised, with its tokens, candidate spans and the noun-phrase rule's keywords.

        One Kiwi call for the questions not seen before.
        """
        normalized = [normalize(question) for question in questions]
        with self._lock:
            known = {text: self._cache[text] for text in set(normalized) if text in self._cache}
        fresh = [text for text in dict.fromkeys(normalized) if text and text not in known]
        for text, tokens in zip(fresh, self.analyse(fresh), strict=True):
            known[text] = ParsedQuestion(
                text, tuple(tokens), candidate_spans(text, tokens), tuple(noun_phrases(text, tokens))
            )
            self._remember(text, known[text])
        return [known.get(text) or ParsedQuestion(text, (), (), ()) for text in normalized]

    def spans_batch(self, questions: Iterable[str]) -> list[tuple[str, ...]]:
        """Each question's candidate spans (normalised here)."""
        return [parsed.spans for parsed in self.parse_batch(questions)]

    def spans(self, question: str) -> tuple[str, ...]:
        return self.spans_batch([question])[0]

    def _remember(self, text: str, parsed: ParsedQuestion) -> None:
        with self._lock:
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[text] = parsed
