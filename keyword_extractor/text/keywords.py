"""One definition of how keyword lists are written, read and compared."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

SEPARATOR = ", "
# Labelling limits (LABELLING.md) that data validation enforces per row.
DEFAULT_MAX_QUERY_CHARS = 300
DEFAULT_MAX_KEYWORDS = 6
_WHITESPACE = re.compile(r"\s+")
# A comma between two digits is part of a number (1,200달러), not a separator.
_ITEM_SEPARATOR = re.compile(r"(?<!\d),|,(?!\d)")


# Default-ignorable code points: zero-width spaces and joiners, the word joiner, BOM, soft hyphen, bidi
# marks and overrides, Hangul fillers, variation selectors. Invisible, so two texts that differ only by
# them are the same text: a train/test leak hidden by a U+200B is a leak, and "\u200b" alone is blank.
INVISIBLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0"
)
_INVISIBLE = re.compile(f"[{INVISIBLE}]")
# Full-width ASCII (！ to ～) and the ideographic space are the same characters, wider: `？` is `?`.
_NARROW = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def normalize(text: str) -> str:
    """NFC, invisible code points removed, full-width ASCII narrowed, single spaces: what looks equal is equal."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text).translate(_NARROW))
    return _WHITESPACE.sub(" ", text).strip()


def parse_keywords(cell: str) -> list[str]:
    """Split a `keyword` cell on commas; items are stripped, empty items kept as ''.

    Empty items are kept so that validation can point at them; use
    `clean_keywords` for model targets and predictions.
    """
    if not cell.strip():
        return []
    return [item.strip() for item in _ITEM_SEPARATOR.split(cell)]


def clean_keywords(items: Iterable[str], max_keywords: int | None = None) -> list[str]:
    """Normalised, non-empty, first occurrence wins, optionally capped."""
    seen: set[str] = set()
    cleaned: list[str] = []
    for item in items:
        keyword = normalize(item)
        if keyword and keyword not in seen:
            seen.add(keyword)
            cleaned.append(keyword)
    return cleaned[:max_keywords] if max_keywords is not None else cleaned


def format_keywords(keywords: Iterable[str]) -> str:
    """The training-target form: keywords joined by ', '."""
    return SEPARATOR.join(keywords)


def is_grounded(keyword: str, query: str) -> bool:
    """A keyword is grounded when it occurs verbatim in the (normalised) question."""
    return normalize(keyword) in normalize(query)


def _occurrences(span: str, text: str) -> list[int]:
    starts, start = [], text.find(span)
    while start != -1:
        starts.append(start)
        start = text.find(span, start + 1)
    return starts


def nested_in(span: str, other: str, text: str) -> bool:
    """True when every place `span` occurs in `text` lies inside a place `other` occurs.

    `보이저` is nested in `보이저 2호` in "보이저 2호는 어디에 있나요?"; `관세` is not nested in `관세청` in
    "관세를 내라는 관세청 문자", where it also stands on its own.
    """
    return covered_by(span, [other], text)


def covered_by(span: str, others: Sequence[str], text: str) -> bool:
    """True when every place `span` occurs in `text` lies inside a place where one of `others` occurs.

    Each place may be covered by a different one: `스티브` is a piece of the answer `스티브 잡스`, `스티브
    워즈니악` in "스티브 잡스와 스티브 워즈니악이 …", though neither name alone covers both its places.
    """
    covers = [
        (start, start + len(other))
        for other in others
        if other != span and span in other
        for start in _occurrences(other, text)
    ]
    if not covers:
        return False
    return all(
        any(begin <= start and start + len(span) <= end for begin, end in covers) for start in _occurrences(span, text)
    )
