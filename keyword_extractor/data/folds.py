"""The validation folds of a training file that design choices are made on; data/test.tsv never is.

A random 10% split says how well a change fits questions like the training ones. It cannot say
whether it holds on topics the training data never covered, which is what users ask about: the
*leave-domain-out* pair does (train on the customs questions, validate on the general ones, and the
reverse, `keyword_extractor.text.domains`), and *unseen topics* holds out general questions none of whose
keywords labels any training question, with both domains in training, as the shipped model is trained.
A change should lose on none of the folds; where one fold is traded for others, benchmarks/README.md
("Transfer") says so with the figures.
Every fold is deterministic (file order, seeded sampling) and its two parts are disjoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from keyword_extractor.text.domains import CUSTOMS, GENERAL, domain_of
from keyword_extractor.text.keywords import clean_keywords, parse_keywords

RANDOM_SEEDS = (7, 11)
RANDOM_FRACTION = 0.1
UNSEEN_TOPICS = "unseen-topics"
UNSEEN_TOPICS_SEED = 7


@dataclass(frozen=True)
class Fold:
    """A training part and the held-out part a model trained on it is validated on."""

    name: str
    train: pd.DataFrame
    held_out: pd.DataFrame


def split_train_val(frame: pd.DataFrame, val_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a seeded share of the rows (training's own split when no validation file is given)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    val = frame.sample(frac=val_fraction, random_state=seed)
    return frame.drop(val.index).reset_index(drop=True), val.reset_index(drop=True)


def leave_domain_out(frame: pd.DataFrame, held_out_domain: str) -> Fold:
    """Train on the other domain's rows, validate on `held_out_domain`'s, both in file order."""
    if held_out_domain not in (CUSTOMS, GENERAL):
        raise ValueError(f"held_out_domain must be {CUSTOMS!r} or {GENERAL!r}, got {held_out_domain!r}")
    held = frame["query"].map(domain_of) == held_out_domain
    trained_on = GENERAL if held_out_domain == CUSTOMS else CUSTOMS
    return Fold(
        f"{trained_on}→{held_out_domain}",
        frame[~held].reset_index(drop=True),
        frame[held].reset_index(drop=True),
    )


def keyword_groups(frame: pd.DataFrame) -> list[int]:
    """Per row, the first row of its group: rows are grouped when they share a keyword, directly or
    through other rows, so that holding out whole groups leaves no held-out keyword labelled in training."""
    parent = list(range(len(frame)))

    def root(row: int) -> int:
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    first_row: dict[str, int] = {}
    for row, cell in enumerate(frame["keyword"]):
        for keyword in clean_keywords(parse_keywords(cell)):
            if keyword in first_row:
                a, b = root(row), root(first_row[keyword])
                parent[max(a, b)] = min(a, b)
            else:
                first_row[keyword] = row
    return [root(row) for row in range(len(frame))]


def unseen_topics(frame: pd.DataFrame, fraction: float = RANDOM_FRACTION, seed: int = UNSEEN_TOPICS_SEED) -> Fold:
    """Hold out general questions whose keywords no training question is labelled with; train on the rest.

    Closer than customs→general to what the shipped model meets: it is trained on both domains, and real
    encyclopedic questions bring topics (names, events, terms) the bundled data never labels. Whole
    keyword groups (`keyword_groups`) made only of general questions are drawn in a seeded order until
    `fraction` of the rows is held out.
    """
    groups = np.asarray(keyword_groups(frame))
    general = (frame["query"].map(domain_of) == GENERAL).to_numpy()
    only_general = pd.Series(general).groupby(groups).all()
    candidates = only_general.index[only_general].tolist()
    held = np.zeros(len(frame), dtype=bool)
    for group in np.random.default_rng(seed).permutation(candidates):
        if held.sum() >= round(len(frame) * fraction):
            break
        held |= groups == group
    return Fold(UNSEEN_TOPICS, frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True))


def validation_folds(frame: pd.DataFrame, seeds: tuple[int, ...] = RANDOM_SEEDS) -> list[Fold]:
    """The protocol: a random 10% split per seed, customs→general and general→customs, then unseen topics."""
    folds = [Fold(f"random-{seed}", *split_train_val(frame, RANDOM_FRACTION, seed)) for seed in seeds]
    return [*folds, leave_domain_out(frame, GENERAL), leave_domain_out(frame, CUSTOMS), unseen_topics(frame)]
