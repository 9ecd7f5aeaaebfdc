"""Nouns used as a question's predicate (`반포한`, `신고하려면`: a noun with `하다`/`되다` glued on).

LABELLING.md keeps them as keywords when they are what the question is about (`반포`, `수입신고`) and
leaves out the procedural ones any question could carry (`확인`, `진행`). The label audit counts how
far a data file is from that convention, and the span selector follows it in its answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from kiwipiepy import Token

from keyword_extractor.text.morphology import token_end, words

VERBAL_SUFFIX_TAGS = frozenset({"XSV"})  # 하다 / 되다 / 시키다 glued to a noun
# procedural verbal nouns that LABELLING.md's "no generic fillers" leaves out (`확인해요`, `진행되나요`)
GENERIC_VERBAL_NOUNS = frozenset(
    """확인 진행 처리 적용 비교 사용 이용 가능 해당 필요 발생 포함 관련 계산 준비 설명 의미 시작
    변경 결정 판단""".split()
)


def verbal_nouns(text: str, tokens: Sequence[Token]) -> list[str]:
    """Nouns that end right where a 하다/되다 suffix begins: `신고하려면` → `신고`, in question order."""
    starts = {token.start for token in tokens if token.tag in VERBAL_SUFFIX_TAGS}
    nouns = []
    for word in words(text, tokens):
        if word.end in starts and word.last_tag.startswith("NN"):
            nouns.append(text[word.tokens[-1].start : token_end(word.tokens[-1])])
    return nouns


def kept_verbal_nouns(text: str, tokens: Sequence[Token]) -> list[str]:
    """The verbal nouns LABELLING.md keeps as keywords (all but `GENERIC_VERBAL_NOUNS`), each once, in order."""
    return [noun for noun in dict.fromkeys(verbal_nouns(text, tokens)) if noun not in GENERIC_VERBAL_NOUNS]
