"""A non-neural keyword extractor (Kiwi noun phrases) that every model has to beat.

How it works, and why:
1. Kiwi tokenises the (normalised) question into *words* (`morphology.words`): runs of nominal tokens
   glued together in the text (`면세한도는` → `면세` + `한도`, the particle ends the run).
2. A word loses a leading suffix / bound noun, and is dropped when it is a question word,
   a filler or a generic predicate noun (`STOPWORDS`).
3. Neighbouring words separated only by whitespace are joined into one phrase, with the space
   kept exactly as written, when `_joins` says so. About half of such pairs are one gold keyword
   (`여행자 휴대품`, `관세 분할납부`) and half are two (`직구 물건`): the rules below and the small word
   lists were chosen by measuring keyword F1 on data/train.tsv only (never on test.tsv).
4. Phrases are deduplicated in order of appearance and capped at `MAX_KEYWORDS`.

Every keyword is a slice of the normalised question, so it is grounded by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kiwipiepy import Token

from keyword_extractor.text.keywords import normalize
from keyword_extractor.text.morphology import Word, shared_kiwi, token_end, words

MAX_KEYWORDS = 6

QUESTION_WORDS = frozenset("무엇 뭐 무어 언제 어디 어느 왜 어떻게 얼마 얼마나 누구 몇 며칠 어떤 무슨".split())
FILLERS = frozenset(
    """해 방법 경우 것 거 걸 게 때 수 등 데 점 중 후 전 뒤 시 내 간 곳 쪽 측 상 만 번 개 가지 적 지 도 예
    이유 가능 필요 처음 설명 사실 말 시작 정도 이야기 뜻 나중 이후 이전 당시 동안 지금 대신 관련 해당 문제
    차이 이내 이하 이상 다음 별도 최근 올해 내용 방식 과정 여부 요약""".split()
)
# Verbal nouns that are mostly the question's predicate (`적용되나요`, `확인하려면`), and nouns too
# generic to be a graph node; each one raised train F1 when removed.
GENERIC_PREDICATES = frozenset(
    """적용 확인 포함 발견 등재 부과 발표 청구 인정 체결 이용 지정 요청 차지 해결 작성 운영 실시 판단 의심
    완성 참여 발행 발생 구분 주장""".split()
)
GENERIC_NOUNS = frozenset(
    "나라 날 최초 사람 안 사건 실제 결과 시기 일 하나 동시 전액 직접적 구체적 예정 순서 경위 도움".split()
)
STOPWORDS = QUESTION_WORDS | FILLERS | GENERIC_PREDICATES | GENERIC_NOUNS

# Words whose space-separated pairs are (almost) never one keyword in train.tsv (≥ 8 pairs, ≤ 20 %
# joined): nodes of their own (`직구 물건` → `직구`, `물건`).
STANDALONE_LEFT = frozenset("RCEP 물품 보세공장 원산지증명서 직구 할당관세 해외직구".split())
STANDALONE_RIGHT = frozenset("과세가격 관세 관세율 사유 세금 수입 수입신고 원산지증명서 적발 직구".split())
# ... and (almost) always one keyword (≥ 8 pairs, ≥ 90 % joined): modifiers and heads (`한-EU FTA`, `우금치 전투`).
MODIFIERS = frozenset("검역 과세 금지 노벨 불법 원산지 유네스코 재수입 재수출 적발 중고 처벌 품목분류 한-EU".split())
HEADS = frozenset("FTA 검사 검증 금지 보류 세계유산 수리 올림픽 인증 장군 전쟁 전투 제한 조약 침해 품목 혁명".split())

MAX_PHRASE_CHARS = 8  # a longer space-joined phrase is usually two keywords
MAX_LISTED_PHRASE_CHARS = 12  # ... unless a MODIFIERS / HEADS entry asks for the join
MIN_COMPOUND_CHARS = 4  # a written compound of this length (`원산지증명서`) rarely takes another word


def _trim(text: str, word: Word, previous: Word | None) -> Word | None:
    """Drop a leading suffix / bound noun (`년`, `-산` alone); None when nothing useful is left.

    A bare unit after a number and a space stays (`1만 달러`): it is joined to the number later.
    """
    tokens = list(word.tokens)
    unit_after_number = (
        previous is not None
        and previous.last_tag in ("SN", "NR")
        and text[previous.end : word.start].isspace()
        and all(token.tag == "NNB" for token in tokens)
    )
    if not unit_after_number:
        while tokens and tokens[0].tag in ("XSN", "NNB"):
            tokens.pop(0)
    if not tokens:
        return None
    start, end = tokens[0].start, token_end(tokens[-1])
    trimmed = Word(tuple(tokens), start, end, text[start:end])
    if trimmed.text in STOPWORDS or word.text in STOPWORDS:
        return None
    return trimmed


def _joins(left: Word, right: Word, phrase_start: int) -> bool:
    """Whether `right` belongs to the same keyword as the phrase ending with `left` (space between)."""
    if left.text in STANDALONE_LEFT or right.text in STANDALONE_RIGHT:
        return False
    length = right.end - phrase_start
    if left.text in MODIFIERS or right.text in HEADS:
        return length <= MAX_LISTED_PHRASE_CHARS
    if left.has_tag("SN") and right.has_tag("SN", "NR", "NNB"):
        return True  # dates and amounts: `1945년 8월 15일`, `1만 달러`
    if length > MAX_PHRASE_CHARS:
        return False
    if len(left.tokens) > 1 and len(left.text) >= MIN_COMPOUND_CHARS:
        return False
    if right.first_tag in ("SN", "NR") and left.last_tag not in ("NNB", "SN", "NNP", "SL"):
        return False  # `명품 1개` is a thing and a count
    if left.last_tag in ("NNG", "XSN") and right.first_tag in ("NNP", "SL"):
        return False  # a common noun rarely modifies a name: `수출기업 AEO`
    if left.last_tag == "NNB" and right.first_tag in ("NNP", "SL", "XPN"):
        return False  # `1592년 임진왜란` is a date and an event
    return True


def noun_phrases(text: str, tokens: Sequence[Token]) -> list[str]:
    """Keywords of one normalised question, in order of appearance, deduplicated and capped."""
    phrases: list[list[Word]] = []
    previous: Word | None = None
    previous_kept_whole = False
    for word in words(text, tokens):
        kept = _trim(text, word, previous)
        spaced = previous is not None and text[previous.end : word.start].isspace()
        can_join = spaced and previous_kept_whole and kept is not None and kept.start == word.start
        if kept is not None and can_join and phrases and _joins(phrases[-1][-1], kept, phrases[-1][0].start):
            phrases[-1].append(kept)
        elif kept is not None:
            phrases.append([kept])
        previous = word
        previous_kept_whole = kept is not None and kept.end == word.end

    keywords: list[str] = []
    for phrase in phrases:
        keyword = text[phrase[0].start : phrase[-1].end]
        if keyword not in keywords:
            keywords.append(keyword)
    return keywords[:MAX_KEYWORDS]


class KiwiNounPhraseBaseline:
    """Noun-phrase keywords from Kiwi's morphological analysis; no training, fully deterministic.

    Kiwi is the process's shared one (`morphology.shared_kiwi`): the first baseline pays its load.
    `num_workers` is Kiwi's thread count for `extract_batch`: 1 or more, or -1 for all cores
    (Kiwi's single-thread mode, 0, cannot analyse a batch).
    """

    def __init__(self, num_workers: int = 1) -> None:
        self._kiwi = shared_kiwi(num_workers)

    def extract(self, text: str) -> list[str]:
        """Keywords of one question, each occurring verbatim in `keywords.normalize(text)`."""
        normalized = normalize(text)
        if not normalized:
            return []
        return noun_phrases(normalized, self._kiwi.tokenize([normalized])[0])

    def extract_batch(self, texts: Iterable[str]) -> list[list[str]]:
        """Keywords of many questions; same result as `extract` on each, faster on large inputs."""
        normalized = [normalize(text) for text in texts]
        keywords: list[list[str]] = [[] for _ in normalized]
        todo = [index for index, text in enumerate(normalized) if text]
        analysed = self._kiwi.tokenize([normalized[index] for index in todo])
        for index, tokens in zip(todo, analysed, strict=True):
            keywords[index] = noun_phrases(normalized[index], tokens)
        return keywords
