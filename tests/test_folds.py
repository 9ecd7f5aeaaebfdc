"""The validation folds design choices are made on: disjoint parts, the same every time, right domains."""

from __future__ import annotations

import pandas as pd
import pytest

from keyword_extractor.data.folds import (
    UNSEEN_TOPICS,
    keyword_groups,
    leave_domain_out,
    unseen_topics,
    validation_folds,
)
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text.domains import CUSTOMS, GENERAL, domain_of
from keyword_extractor.text.keywords import clean_keywords, parse_keywords
from tests.conftest import TRAIN_TSV


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return load_pairs(TRAIN_TSV)


def test_the_protocol_has_two_random_splits_and_the_leave_domain_out_pair(train):
    assert [fold.name for fold in validation_folds(train)] == [
        "random-7",
        "random-11",
        f"{CUSTOMS}→{GENERAL}",
        f"{GENERAL}→{CUSTOMS}",
        UNSEEN_TOPICS,
    ]


def test_every_fold_splits_the_file_into_disjoint_parts_that_cover_it(train):
    for fold in validation_folds(train):
        trained, held = set(fold.train["query"]), set(fold.held_out["query"])
        assert not trained & held, fold.name
        assert len(fold.train) + len(fold.held_out) == len(train), fold.name
        assert fold.held_out.index.tolist() == list(range(len(fold.held_out)))


def test_folds_are_the_same_on_every_call(train):
    for first, again in zip(validation_folds(train), validation_folds(train.copy()), strict=True):
        pd.testing.assert_frame_equal(first.train, again.train)
        pd.testing.assert_frame_equal(first.held_out, again.held_out)


def test_leave_domain_out_holds_out_one_domain_and_trains_on_the_other(train):
    fold = leave_domain_out(train, GENERAL)
    assert fold.name == f"{CUSTOMS}→{GENERAL}"
    assert {domain_of(q) for q in fold.held_out["query"]} == {GENERAL}
    assert {domain_of(q) for q in fold.train["query"]} == {CUSTOMS}
    reverse = leave_domain_out(train, CUSTOMS)
    pd.testing.assert_frame_equal(reverse.train, fold.held_out)
    # file order is kept: the first held-out row is the file's first general question
    first_general = next(q for q in train["query"] if domain_of(q) == GENERAL)
    assert fold.held_out["query"].iloc[0] == first_general
    with pytest.raises(ValueError, match="held_out_domain"):
        leave_domain_out(train, "sports")


def test_the_random_splits_hold_out_a_tenth(train):
    for fold in validation_folds(train)[:2]:
        assert len(fold.held_out) == round(len(train) * 0.1), fold.name


def _keywords(frame: pd.DataFrame) -> set[str]:
    return {k for cell in frame["keyword"] for k in clean_keywords(parse_keywords(cell))}


def test_rows_sharing_a_keyword_directly_or_through_others_are_one_group():
    frame = pd.DataFrame(
        {
            "query": ["관세청 전화번호", "관세청 통관 조회", "통관 보류", "베를린 장벽", "보류 사유"],
            "keyword": ["관세청, 전화번호", "관세청, 통관", "통관, 보류", "베를린 장벽", " 보류 "],
        }
    )
    assert keyword_groups(frame) == [0, 0, 0, 3, 0]


def test_unseen_topics_holds_out_general_questions_whose_keywords_label_no_training_question(train):
    fold = unseen_topics(train)
    assert {domain_of(q) for q in fold.held_out["query"]} == {GENERAL}
    assert {domain_of(q) for q in fold.train["query"]} == {CUSTOMS, GENERAL}
    assert not _keywords(fold.held_out) & _keywords(fold.train)
    groups = keyword_groups(fold.held_out)
    largest_group = max(groups.count(g) for g in set(groups))
    assert round(len(train) * 0.1) <= len(fold.held_out) < round(len(train) * 0.1) + largest_group
    assert unseen_topics(train, seed=8).held_out["query"].tolist() != fold.held_out["query"].tolist()
