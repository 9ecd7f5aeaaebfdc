"""The label audit on a small file with planted inconsistencies: it finds them and rewrites nothing."""

from __future__ import annotations

import hashlib
import json

from keyword_extractor.data.label_audit import audit
from keyword_extractor.data.tsv import load_pairs
from tests.conftest import TRAIN_TSV, run_module

ROWS = [
    ("여행자 휴대품 면세한도는 얼마인가요?", "여행자 휴대품, 면세한도"),
    ("면세한도 넘으면 어떻게 되나요?", "면세한도"),
    ("면세한도를 초과한 물건은 신고해야 하나요?", "물건, 신고"),  # 면세한도 left out: planted
    ("세종대왕이 훈민정음을 반포한 해는 언제인가?", "세종대왕, 훈민정음, 반포"),
    ("세조가 경국대전을 반포한 이유는?", "세조, 경국대전"),  # 반포 left out: planted
    ("관세 체납하면 어떻게 돼?", "관세 체납"),  # 관세 is a piece of the kept phrase: not an inconsistency
    ("관세는 언제 내요?", "관세"),
    ("관세 환급 신청은 어디서 확인해요?", "관세 환급"),
]


def write(path, rows) -> None:
    path.write_text("query\tkeyword\n" + "".join(f"{q}\t{k}\n" for q, k in rows), encoding="utf-8")


def test_the_audit_finds_planted_inconsistencies_and_leaves_pieces_of_kept_phrases_alone(tmp_path):
    data = tmp_path / "train.tsv"
    write(data, ROWS)
    report = audit(data, min_rows=2)
    found = {entry.span: entry for entry in report.inconsistent}
    assert found["면세한도"].kept_lines == [2, 3] and found["면세한도"].left_out_lines == [4]
    assert "관세" not in found  # lines 7 (piece of `관세 체납`), 9 (piece of `관세 환급`) follow the rule
    verbal = report.verbal_nouns
    assert 5 in verbal.labelled_lines and 6 in verbal.unlabelled_lines  # 반포 kept, then left out
    assert not any("확인" in example for example in verbal.examples_unlabelled)  # a generic verbal noun


def test_a_word_inside_two_kept_phrases_is_a_piece_of_them_not_an_inconsistency(tmp_path):
    """`베트남` lies inside `베트남산` at one place and `한-베트남 FTA` at the other: no keyword holds both."""
    data = tmp_path / "train.tsv"
    write(
        data,
        [
            ("베트남 커피 반입 되나요?", "베트남, 커피"),
            ("베트남산 의류도 한-베트남 FTA 적용되나요?", "베트남산, 의류, 한-베트남 FTA"),
        ],
    )
    assert "베트남" not in {entry.span for entry in audit(data, min_rows=2, suspects=False).inconsistent}
    write(
        data,
        [("베트남 커피 반입 되나요?", "베트남, 커피"), ("베트남산 의류도 한-베트남 FTA 적용되나요?", "베트남산, 의류")],
    )
    found = {entry.span: entry for entry in audit(data, min_rows=2, suspects=False).inconsistent}
    assert found["베트남"].kept_lines == [2] and found["베트남"].left_out_lines == [3]  # one place left bare


def test_the_cli_writes_both_reports_and_never_touches_the_data(tmp_path):
    data = tmp_path / "train.tsv"
    write(data, ROWS)
    before = hashlib.sha256(data.read_bytes()).hexdigest()
    done = run_module("keyword_extractor.data.label_audit", "--train", str(data), "--out", str(tmp_path / "audit"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert hashlib.sha256(data.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in data.parent.iterdir()) == ["audit", "train.tsv"]
    report = json.loads((tmp_path / "audit" / "label_audit.json").read_text(encoding="utf-8"))
    assert report["rows"] == len(ROWS) and report["verbal_nouns"]["labelled_lines"]
    written = (tmp_path / "audit" / "label_audit.md").read_text(encoding="utf-8")
    assert "Spans labelled both ways" in written and "Rows likely mislabelled" in written
    assert "verbal nouns labelled in" in done.stdout
    assert isinstance(report["likely_mislabelled"], list)


def test_rows_planted_with_wrong_labels_are_among_the_likely_mislabelled(tmp_path):
    """Out-of-fold confidence (cleanlab) on 400 real rows: a question word kept, a frequent keyword dropped."""
    frame = load_pairs(TRAIN_TSV).iloc[:400].reset_index(drop=True)
    rows = list(zip(frame["query"], frame["keyword"], strict=True))
    kept_filler = next(i for i, (q, k) in enumerate(rows) if "얼마" in q and "얼마" not in k)
    rows[kept_filler] = (rows[kept_filler][0], rows[kept_filler][1] + ", 얼마")
    dropped = next(i for i, (q, k) in enumerate(rows) if "관세청" in k.split(", ") and len(k.split(", ")) > 1)
    rows[dropped] = (rows[dropped][0], ", ".join(k for k in rows[dropped][1].split(", ") if k != "관세청"))
    data = tmp_path / "train.tsv"
    write(data, rows)
    report = audit(data)
    suspects = {row.line: row for row in report.suspects}
    assert "얼마" in suspects[kept_filler + 2].kept_but_unlikely
    assert "관세청" in suspects[dropped + 2].left_out_but_likely
    ranked = [row.line for row in report.suspects]  # worst first: both planted rows in the first quarter
    assert ranked.index(kept_filler + 2) < len(ranked) / 4 and ranked.index(dropped + 2) < len(ranked) / 4
    assert [row.quality for row in report.suspects] == sorted(row.quality for row in report.suspects)
    assert "rows likely mislabelled" in report.summary()


def test_a_file_too_small_to_score_out_of_fold_has_no_suspects_and_no_error(tmp_path):
    data = tmp_path / "train.tsv"
    write(data, ROWS[:1])
    report = audit(data)
    assert report.suspects == [] and "0 rows likely mislabelled" in report.summary()
