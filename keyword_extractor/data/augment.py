"""Keyword substitution: more training rows in which the keywords are words the model has not memorised.

A model trained from scratch on a few thousand questions learns to copy the words it has seen as
keywords and to skip the ones it has not; on new questions most keywords are new words. Each extra
row takes a training question and swaps some of its keywords, in the question and in the target
alike, for keywords of other rows (`여행자 휴대품 면세한도는?` → `반려견 휴대품 통관 보류는?`), so what the
model learns is *where* a keyword stands, not *which* word it is.
"""

from __future__ import annotations

import random

import pandas as pd

from keyword_extractor.text.keywords import clean_keywords, format_keywords, normalize, parse_keywords


def substitute_keywords(frame: pd.DataFrame, copies: int, share: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """`copies` substituted variants of every row (query, keyword), each keyword swapped with chance `share`.

    Only keywords that occur verbatim in their question, and overlap no other keyword of the row, are
    swapped; rows where nothing was swapped are left out. The input frame is not modified.
    """
    if copies <= 0:
        return frame.iloc[0:0].copy()
    rng = random.Random(seed)
    rows = [
        (normalize(query), clean_keywords(parse_keywords(cell)))
        for query, cell in zip(frame["query"], frame["keyword"])
    ]
    pools: dict[int, list[str]] = {}  # by number of words: a phrase is swapped for a phrase of as many words
    for keyword in sorted({keyword for _, keywords in rows for keyword in keywords}):
        pools.setdefault(keyword.count(" "), []).append(keyword)
    made: list[tuple[str, str]] = []
    for _ in range(copies):
        for query, keywords in rows:
            swappable = [k for k in keywords if k in query and not any(k != o and (k in o or o in k) for o in keywords)]
            new_query, new_keywords = query, list(keywords)
            for keyword in swappable:
                if rng.random() >= share:
                    continue
                replacement = rng.choice(pools[keyword.count(" ")])
                if replacement in new_keywords or replacement in new_query:
                    continue
                new_query = new_query.replace(keyword, replacement)
                new_keywords = [replacement if k == keyword else k for k in new_keywords]
            if new_query != query:
                made.append((new_query, format_keywords(new_keywords)))
    return pd.DataFrame(made, columns=["query", "keyword"])
