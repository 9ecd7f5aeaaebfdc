"""Accepted corrections as a training file: the only way a correction reaches training.

Pending and rejected corrections are never read. A question that is also in the test file is left
out (and counted): training on it would score the model on what it was shown. When one question was
corrected more than once, the most recently accepted correction is the row. Every row is checked again
with the correction rules, so a row written into the store by other means cannot break the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keyword_extractor.common.files import write_atomic
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.feedback.rules import correction_problems
from keyword_extractor.feedback.store import FeedbackStore, StoredCorrection
from keyword_extractor.text.keywords import format_keywords, normalize


@dataclass(frozen=True)
class ExportSummary:
    path: str
    rows: int  # written
    in_test: int  # accepted, left out: the question is in the test file
    superseded: int  # accepted, replaced by a later accepted correction of the same question
    invalid: int  # accepted, left out: breaks the labelling rules
    last_id: int  # highest correction id the file reflects (0: none)

    def summary(self) -> str:
        return (
            f"wrote {self.rows} accepted correction(s) to {self.path}; left out {self.in_test} whose question is in "
            f"the test file, {self.superseded} superseded by a later correction, {self.invalid} breaking the rules"
        )


def _latest_per_question(accepted: list[StoredCorrection]) -> tuple[dict[str, StoredCorrection], int]:
    chosen: dict[str, StoredCorrection] = {}
    for stored in sorted(accepted, key=lambda s: (s.reviewed_at is not None, s.reviewed_at or s.created_at, s.id)):
        chosen[normalize(stored.correction.query)] = stored
    return chosen, len(accepted) - len(chosen)


def export_accepted(store: FeedbackStore, out: str | Path, test_path: str | Path | None = None) -> ExportSummary:
    """Write the accepted corrections as a `query<TAB>keyword` file (atomically) and say what was left out."""
    accepted = store.corrections("accepted")
    test_questions = {normalize(q) for q in load_pairs(test_path)["query"]} if test_path else set()
    chosen, superseded = _latest_per_question(accepted)
    lines, in_test, invalid = ["query\tkeyword"], 0, 0
    for question, stored in sorted(chosen.items(), key=lambda item: item[1].id):
        if question in test_questions:
            in_test += 1
        elif correction_problems(stored.correction.query, stored.correction.keywords):
            invalid += 1
        else:
            lines.append(f"{question}\t{format_keywords(normalize(k) for k in stored.correction.keywords)}")
    path = write_atomic(out, "\n".join(lines) + "\n")
    last_id = max((stored.id for stored in accepted), default=0)
    return ExportSummary(str(path), len(lines) - 1, in_test, superseded, invalid, last_id)
