"""The training file of a run with extra files (accepted corrections, new labelled batches) added to it.

A question that an extra file labels again takes the extra file's keywords (the later file wins): a
correction is there to replace what the bundled data said. The extra files' rows come first, so that a
run limited to its first rows (`--limit-train-rows`) still learns from them. Written once into the
run's folder, so the run trains, and can resume, on exactly the rows it logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from keyword_extractor.common.files import write_atomic
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text.keywords import normalize


@dataclass(frozen=True)
class CombinedData:
    path: str
    rows: int
    rows_by_file: dict[str, int] = field(default_factory=dict)  # every input file, in order
    replaced: int = 0  # base rows whose question an extra file labels again

    @property
    def extra_rows(self) -> int:
        return sum(list(self.rows_by_file.values())[1:])


def combine_training_files(base: str | Path, extras: Sequence[str | Path], out: str | Path) -> CombinedData:
    """Every extra file's rows, then the rows of `base` that no extra file labels again."""
    rows: dict[str, tuple[str, str]] = {}
    rows_by_file: dict[str, int] = {}
    for path in [base, *extras]:
        frame = load_pairs(path)
        rows_by_file[str(path)] = len(frame)
        for query, keyword in zip(frame["query"], frame["keyword"], strict=True):
            key = normalize(query)
            rows.pop(key, None)  # a question labelled again: the later file's row, in the later file's place
            rows[key] = (query, keyword)
    base_keys = {normalize(query) for query in load_pairs(base)["query"]}
    extra_keys = {normalize(query) for path in extras for query in load_pairs(path)["query"]}
    replaced = len(base_keys & extra_keys)
    ordered = [rows[k] for k in rows if k in extra_keys] + [rows[k] for k in rows if k not in extra_keys]
    text = "query\tkeyword\n" + "".join(f"{query}\t{keyword}\n" for query, keyword in ordered)
    written = write_atomic(out, text)
    return CombinedData(str(written), len(rows), rows_by_file, replaced)
