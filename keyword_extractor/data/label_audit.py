"""Where a training file disagrees with itself: spans labelled one way in some rows and the other way in others.

    python -m keyword_extractor.data.label_audit --train data/train.tsv --out artifacts/label_audit

A model cannot learn a rule the data does not follow. Three reports, for the people who maintain the data:

- **inconsistent spans**: the same text, a candidate keyword (`morphology.candidate_spans`) in several
  questions, kept as a keyword in some and left out in others, with the line numbers of both sides;
- **verbal nouns**: nouns used as a predicate (`신고하려면`, `반포한`: noun + `하다`/`되다`). LABELLING.md's
  convention (data/LABELLING.md) is to keep them when they are the question's subject matter (`반포`); the
  audit counts how often the file does, so the distance from the convention is a number;
- **likely mislabelled rows**: rows whose labels an out-of-fold span scorer confidently disagrees with
  (`label_suspects`, cleanlab's confident learning), worst first.

It reads and reports; it never rewrites a data file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from keyword_extractor.common.files import markdown_cell, write_atomic
from keyword_extractor.data.label_suspects import SuspectRow, find_suspects
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text.keywords import clean_keywords, covered_by, parse_keywords
from keyword_extractor.text.verbal_nouns import kept_verbal_nouns

MIN_ROWS = 3  # a span must be a candidate in at least this many questions to be judged
FIRST_DATA_LINE = 2  # line 1 is the header
JSON_REPORT, MARKDOWN_REPORT = "label_audit.json", "label_audit.md"


@dataclass
class InconsistentSpan:
    span: str
    kept_lines: list[int] = field(default_factory=list)
    left_out_lines: list[int] = field(default_factory=list)

    @property
    def minority(self) -> int:
        return min(len(self.kept_lines), len(self.left_out_lines))


@dataclass
class VerbalNouns:
    labelled_lines: list[int] = field(default_factory=list)
    unlabelled_lines: list[int] = field(default_factory=list)
    examples_unlabelled: list[str] = field(default_factory=list)

    @property
    def labelled_share(self) -> float:
        total = len(self.labelled_lines) + len(self.unlabelled_lines)
        return len(self.labelled_lines) / total if total else 0.0


@dataclass
class AuditReport:
    file: str
    rows: int
    inconsistent: list[InconsistentSpan]
    verbal_nouns: VerbalNouns
    suspects: list[SuspectRow] | None = None  # None: not looked for (--no-suspects)

    def summary(self) -> str:
        verbal = self.verbal_nouns
        places = len(verbal.labelled_lines) + len(verbal.unlabelled_lines)
        suspected = "" if self.suspects is None else f"; {len(self.suspects)} rows likely mislabelled"
        return (
            f"label audit of {self.file}: {len(self.inconsistent)} spans labelled both ways; verbal nouns "
            f"labelled in {len(verbal.labelled_lines)} of {places} places ({verbal.labelled_share:.0%})"
            f"{suspected}"
        )

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "rows": self.rows,
            "inconsistent_spans": [asdict(item) for item in self.inconsistent],
            "verbal_nouns": {
                **asdict(self.verbal_nouns),
                "labelled_share": round(self.verbal_nouns.labelled_share, 4),
            },
            "likely_mislabelled": None if self.suspects is None else [asdict(row) for row in self.suspects],
        }


def audit(path: str | Path, min_rows: int = MIN_ROWS, suspects: bool = True) -> AuditReport:
    """The reports for one `query<TAB>keyword` file (Kiwi runs on every question once).

    `suspects`: also rank likely mislabelled rows (five scorer fits: about 15 s for 2,700 rows on 2 cores).
    """
    from keyword_extractor.text.questions import QuestionAnalyser

    pairs = load_pairs(path)
    golds = [set(clean_keywords(parse_keywords(cell))) for cell in pairs["keyword"]]
    queries = pairs["query"].tolist()
    parsed = QuestionAnalyser().parse_batch(queries)
    by_span: dict[str, InconsistentSpan] = {}
    verbal = VerbalNouns()
    for index, (question, gold) in enumerate(zip(parsed, golds, strict=True)):
        line = index + FIRST_DATA_LINE
        for span in dict.fromkeys(question.spans):
            if span not in gold and covered_by(span, gold, question.text):
                continue  # a piece of a kept keyword: left out by the rule, not by a different judgement
            entry = by_span.setdefault(span, InconsistentSpan(span))
            (entry.kept_lines if span in gold else entry.left_out_lines).append(line)
        for noun in kept_verbal_nouns(question.text, question.tokens):
            if noun in gold or covered_by(noun, gold, question.text):
                verbal.labelled_lines.append(line)
            else:
                verbal.unlabelled_lines.append(line)
                if len(verbal.examples_unlabelled) < 20:
                    verbal.examples_unlabelled.append(f"line {line}: {noun} ({question.text})")
    inconsistent = [
        entry
        for entry in by_span.values()
        if len(entry.kept_lines) + len(entry.left_out_lines) >= min_rows and entry.minority > 0
    ]
    inconsistent.sort(key=lambda entry: (-entry.minority, entry.span))
    suspected = find_suspects(queries, parsed, golds, FIRST_DATA_LINE) if suspects else None
    return AuditReport(str(path), len(pairs), inconsistent, verbal, suspected)


def write_reports(report: AuditReport, out: str | Path) -> tuple[Path, Path]:
    """label_audit.json and label_audit.md in `out` (the validation folder, in a pipeline run)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_atomic(out / JSON_REPORT, json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    return json_path, write_atomic(out / MARKDOWN_REPORT, markdown(report))


def markdown(report: AuditReport, shown: int = 50) -> str:
    verbal = report.verbal_nouns
    lines = [
        f"# Label audit of {report.file} ({report.rows} rows)",
        "",
        "## Verbal nouns (noun + 하다/되다 used as the predicate)",
        "",
        f"Labelled as a keyword in {len(verbal.labelled_lines)} of "
        f"{len(verbal.labelled_lines) + len(verbal.unlabelled_lines)} occurrences "
        f"({verbal.labelled_share:.0%}); the convention (data/LABELLING.md) keeps them when they are the "
        "question's subject matter. Unlabelled examples:",
        "",
        *(f"- {markdown_cell(example)}" for example in verbal.examples_unlabelled),
        "",
        f"## Spans labelled both ways ({len(report.inconsistent)}; the {min(shown, len(report.inconsistent))} "
        "with the largest minority shown)",
        "",
        "| span | kept | left out | lines kept (first 8) | lines left out (first 8) |",
        "|---|---:|---:|---|---|",
    ]
    for entry in report.inconsistent[:shown]:
        lines.append(
            f"| {markdown_cell(entry.span)} | {len(entry.kept_lines)} | {len(entry.left_out_lines)} | "
            f"{', '.join(map(str, entry.kept_lines[:8]))} | {', '.join(map(str, entry.left_out_lines[:8]))} |"
        )
    if report.suspects is not None:
        lines.extend(_suspects_markdown(report.suspects, shown))
    return "\n".join(lines) + "\n"


def _suspects_markdown(suspects: list[SuspectRow], shown: int) -> list[str]:
    lines = [
        "",
        f"## Rows likely mislabelled ({len(suspects)}; the {min(shown, len(suspects))} surest shown)",
        "",
        "A span scorer fitted on the other four fifths of the file confidently disagrees with these labels "
        "(cleanlab). A suspect is a question for a person: a correct but rare label can be one.",
        "",
        "| line | label quality | kept, scored unlikely | left out, scored likely | question |",
        "|---:|---:|---|---|---|",
    ]
    for row in suspects[:shown]:
        lines.append(
            f"| {row.line} | {row.quality:.3f} | {markdown_cell(', '.join(row.kept_but_unlikely))} | "
            f"{markdown_cell(', '.join(row.left_out_but_likely))} | {markdown_cell(row.query)} |"
        )
    return lines


if __name__ == "__main__":  # the command line lives in keyword_extractor.data.cli
    from keyword_extractor.data.cli import label_audit_main

    label_audit_main()
