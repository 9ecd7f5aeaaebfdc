"""Bulk keyword extraction from a file of questions, resumable.

    python -m keyword_extractor.inference.predict --model-dir artifacts/runs/x/train/model \\
        --input questions.txt --output keywords.jsonl [--batch-size 32]
    python -m keyword_extractor.inference.predict --model-dir DIR --input data/test.tsv --column query \
        --output out.jsonl

Input: `.txt` (one question per line; blank lines are skipped) or `.tsv` (header row; the questions
are in `--column`, default `query`; other columns are ignored). UTF-8, with or without BOM, LF or
CRLF. The input is only read, never written.

Output: JSON Lines, one object per question in input order:
`{"query": "...", "keywords": ["...", ...], "line": <line number in the input>}`.

Resumable: the output is written a batch at a time. Run the same command again after an
interruption and it keeps the complete lines already written, cuts off a half-written last line,
and appends only the questions that are missing. `--overwrite` starts again from scratch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from keyword_extractor.common.files import split_lines
from keyword_extractor.model.artifact import DEFAULT_BATCH_SIZE

EXIT_BAD_INPUT = 2
_UTF8_BOM = "\ufeff"


class InputError(ValueError):
    """The input or output file cannot be used as given; the message says why and what to do."""


@dataclass(frozen=True)
class Question:
    line: int  # 1-based line number in the input file
    text: str


def _lines(path: Path) -> list[str]:
    """Lines split on LF only (editors' line numbers), without CR or BOM; a bad encoding is an InputError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not valid UTF-8 (byte {error.start}); re-save the file as UTF-8") from None
    return split_lines(text.removeprefix(_UTF8_BOM))


def read_questions(path: str | Path, column: str = "query") -> list[Question]:
    """Questions of a .txt or .tsv file, in file order, with their line numbers."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".tsv"):
        raise InputError(
            f"{path}: unsupported input type {suffix or '(none)'!r}; use .txt (one question per line) or .tsv"
        )
    lines = _lines(path)
    if suffix == ".txt":
        questions = [Question(number, line.strip()) for number, line in enumerate(lines, start=1) if line.strip()]
    else:
        if not lines or not lines[0].strip():
            raise InputError(f"{path}: the first line must be a header naming the columns (e.g. 'query<TAB>keyword')")
        header = [name.strip() for name in lines[0].split("\t")]
        if column not in header:
            found = ", ".join(repr(name) for name in header)
            raise InputError(f"{path}: no column {column!r} in the header (found {found}); choose one with --column")
        position = header.index(column)
        questions = []
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                raise InputError(
                    f"{path}, line {number}: expected {len(header)} tab-separated fields, found {len(fields)}"
                )
            if fields[position].strip():
                questions.append(Question(number, fields[position].strip()))
    if not questions:
        raise InputError(f"{path}: no questions found")
    return questions


def resume_point(output: Path, questions: list[Question]) -> int:
    """How many questions the output already holds; cuts off a half-written last line.

    Every complete line must be an answer to the question at the same position, so an output
    written for another input is refused instead of being continued.
    """
    if not output.exists():
        return 0
    data = output.read_bytes()
    complete = data.rfind(b"\n") + 1  # everything after the last newline is a partial line
    rows = data[:complete].split(b"\n")[:-1] if complete else []
    for index, raw in enumerate(rows):
        try:
            record = json.loads(raw)
            query = record["query"]
        except (ValueError, TypeError, KeyError):
            raise InputError(
                f"{output}, line {index + 1}: not a line this tool wrote; use another --output or --overwrite"
            ) from None
        if index >= len(questions) or query != questions[index].text:
            raise InputError(
                f"{output}, line {index + 1}: answers another input than this one "
                "(questions differ); use another --output or --overwrite"
            )
    if complete < len(data):
        with output.open("r+b") as handle:  # drop the partial line left by an interrupted write
            handle.truncate(complete)
    return len(rows)


def predict_file(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    column: str = "query",
    batch_size: int = DEFAULT_BATCH_SIZE,
    overwrite: bool = False,
    extractor=None,
) -> tuple[int, int]:
    """Write keywords for every question not yet in the output; returns (already there, newly written)."""
    from tqdm import tqdm

    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.resolve() == input_path.resolve():
        raise InputError("--output must not be the input file: the input is never modified")
    questions = read_questions(input_path, column)
    if overwrite and output_path.exists():
        output_path.unlink()
    done = resume_point(output_path, questions)
    if done == len(questions):
        return done, 0
    if extractor is None:
        from keyword_extractor.inference.extractor import KeywordExtractor

        extractor = KeywordExtractor(model_dir)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        output_path.open("a", encoding="utf-8") as out,
        tqdm(total=len(questions), initial=done, unit="q", desc="keywords", disable=None) as bar,
    ):
        for start in range(done, len(questions), batch_size):
            batch = questions[start : start + batch_size]
            keywords = extractor.extract([q.text for q in batch], batch_size=batch_size)
            out.write(
                "".join(
                    json.dumps({"query": q.text, "keywords": k, "line": q.line}, ensure_ascii=False) + "\n"
                    for q, k in zip(batch, keywords)
                )
            )
            out.flush()  # a whole batch per write: an interruption loses at most the batch in flight
            bar.update(len(batch))
    return done, len(questions) - done


if __name__ == "__main__":  # the command line lives in keyword_extractor.inference.cli
    from keyword_extractor.inference.cli import predict_main

    raise SystemExit(predict_main())
