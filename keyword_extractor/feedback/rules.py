"""A correction is checked with the labelling rules of a training row (data/LABELLING.md), and a few more.

A training file is repaired by a labeller who reads the validation report; a correction comes from
anyone who can reach the service, so the rules that are warnings for a file (a keyword that does not
occur in the question) are refusals here, and characters that would break the TSV it is exported to
(tabs, line breaks, commas inside a keyword) are refused too.
"""

from __future__ import annotations

from keyword_extractor.data.validation import control_characters, row_problems
from keyword_extractor.text.keywords import (
    DEFAULT_MAX_KEYWORDS,
    DEFAULT_MAX_QUERY_CHARS,
    format_keywords,
    is_grounded,
    normalize,
    parse_keywords,
)


def correction_problems(
    query: str,
    keywords: list[str],
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS,
    max_keywords: int = DEFAULT_MAX_KEYWORDS,
) -> list[str]:
    """Why this (question, corrected keywords) pair cannot become a training row; [] when it can."""
    problems = []
    if found := control_characters(query, every_format_character=True):
        problems.append(f"the question contains control characters ({', '.join(found)})")
    for keyword in keywords:
        if found := control_characters(keyword, every_format_character=True):
            problems.append(f"keyword {keyword!r} contains control characters ({', '.join(found)})")
        if len(parse_keywords(keyword)) > 1:  # a comma between digits (1,200달러) is part of the keyword
            problems.append(f"keyword {keyword!r} contains a comma: keywords are separated by commas")
    if problems:
        return problems
    problems = row_problems(query, format_keywords(keywords), max_query_chars, max_keywords)
    normalized = [normalize(keyword) for keyword in keywords]
    if repeated := sorted({k for k in normalized if k and normalized.count(k) > 1}):
        problems.append(f"keywords given more than once: {', '.join(repeated)}")
    problems += [
        f"keyword {keyword!r} does not occur in the question: keywords are spans of the question, verbatim"
        for keyword in keywords
        if normalize(keyword) and not is_grounded(keyword, query)
    ]
    return problems
