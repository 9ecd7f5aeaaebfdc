"""How much more likely Kiwi's language model finds a phrase's words together than apart.

A fixed term (`베를린 장벽`, `포에니 전쟁`, `관세 분할납부`) scores far higher as one phrase than its words
scored one by one; two words that merely meet in a question (`직구 물건`) do not. Kiwi's model was trained
on a large corpus of the whole language, so this holds for phrases the 2,700 training questions never saw,
where corpus keep rates say nothing, and in either domain: on the two-word candidate spans of
data/train.tsv it ranks kept spans above the others with an AUC of 0.66 in the customs questions and
0.72 in the general ones. Measured with kiwipiepy 0.24's default model (CoNg), which requirements.txt asks for.
"""

from __future__ import annotations

import functools

from keyword_extractor.text.morphology import shared_kiwi

CACHE_SIZE = 1 << 16  # texts; a service sees the same spans and words again and again


@functools.lru_cache(maxsize=CACHE_SIZE)
def language_score(text: str) -> float:
    """Kiwi's score of the text analysed on its own: the sum of its morphemes' language-model scores."""
    return float(sum(token.score for token in shared_kiwi().tokenize([text])[0]))


def cohesion(span: str) -> float:
    """The span's score as one phrase minus its words' scores on their own; 0 for a single word."""
    words = span.split(" ")
    if len(words) < 2:
        return 0.0
    return language_score(span) - sum(language_score(word) for word in words)
