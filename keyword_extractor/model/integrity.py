"""Is a keyword model directory whole? Checked before anything heavy loads it.

A copy cut short, a disk error or a stray edit must not be served: random bytes inside the weights still
load, and a missing file surfaces as a misleading message deep inside transformers (a missing
`config.json` reads as `ignore_mismatched_sizes`, a missing `tokenizer.json` as "install sentencepiece").
Export records each file it writes with its size and SHA-256 in `integrity.json`; the check compares
them, parses every JSON file, reads the weights' safetensors header, and answers every damage with one
line that names the file. Directories exported before `integrity.json` get every check but the digests.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path

from keyword_extractor.common.files import file_sha256, write_atomic
from keyword_extractor.model.artifact import SETTINGS_FILE

INTEGRITY_FILE = "integrity.json"
WEIGHTS_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
JSON_FILES = (
    "config.json",
    SETTINGS_FILE,
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "span_selector.json",
)
REQUIRED_FILES = (SETTINGS_FILE, "config.json", "tokenizer.json")
WHAT_TO_DO = "export the model again (`python -m keyword_extractor.training.export`) or copy it again"


class ModelDirError(FileNotFoundError):
    """A model directory that is missing, incomplete or damaged; the message is one line naming the file.

    A FileNotFoundError, so every caller that reports a missing directory reports a damaged one the same way.
    """


def record(model_dir: str | Path, names: Iterable[str]) -> None:
    """Add (or refresh) `names`' size and digest in the directory's integrity file; written atomically."""
    model_dir = Path(model_dir)
    entries = _recorded(model_dir)
    for name in names:
        path = model_dir / name
        entries[name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    _store(model_dir, entries)


def forget(model_dir: str | Path, names: Iterable[str]) -> None:
    """Drop `names` from the integrity file, for files removed on purpose (a span selector fitted anew)."""
    model_dir = Path(model_dir)
    if not (model_dir / INTEGRITY_FILE).is_file():
        return
    forgotten = set(names)
    _store(model_dir, {name: entry for name, entry in _recorded(model_dir).items() if name not in forgotten})


def check_model_dir(model_dir: str | Path, verify_digests: bool = True) -> Path:
    """The directory, if it is a whole keyword model; ModelDirError naming the first damaged file if not.

    `verify_digests=False` skips reading every recorded file for its SHA-256 (seconds at KoBART size) and
    keeps the rest: for an early check before `KeywordExtractor`, which verifies them when it loads.
    """
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelDirError(f"{path} is not a model directory: no such directory")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if not any((path / name).is_file() for name in WEIGHTS_FILES):
        missing.append("model.safetensors")
    if missing:
        raise ModelDirError(
            f"{path} is not a keyword model directory: missing {', '.join(missing)} "
            "(a training run writes one to <run>/train/model; "
            "`python -m keyword_extractor.training.export` converts a .ckpt)"
        )
    for name, expected in _recorded(path).items():
        _check_recorded(path / name, expected, verify_digests)
    for name in JSON_FILES:
        if (path / name).is_file():
            _check_json(path / name)
    if (path / "model.safetensors").is_file():
        _check_safetensors(path / "model.safetensors")
    selector = [(path / name).is_file() for name in ("span_selector.json", "span_selector.skops")]
    if any(selector) and not all(selector):
        absent = "span_selector.skops" if selector[0] else "span_selector.json"
        raise ModelDirError(f"{path / absent}: missing, though its span selector's other file is there; {WHAT_TO_DO}")
    return path


def _store(model_dir: Path, entries: dict[str, dict]) -> None:
    write_atomic(model_dir / INTEGRITY_FILE, json.dumps({"files": entries}, indent=2, sort_keys=True))


def _recorded(model_dir: Path) -> dict[str, dict]:
    path = model_dir / INTEGRITY_FILE
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(entries, dict):
            raise TypeError("files is not an object")
    except (ValueError, KeyError, TypeError) as error:
        raise ModelDirError(f"{path}: not a readable integrity record ({error}); {WHAT_TO_DO}") from None
    return entries


def _check_recorded(path: Path, expected: dict, verify_digest: bool) -> None:
    if not path.is_file():
        raise ModelDirError(f"{path}: missing (export wrote it); {WHAT_TO_DO}")
    size = path.stat().st_size
    if size != expected.get("bytes"):
        raise ModelDirError(f"{path}: {size} bytes where export wrote {expected.get('bytes')}; {WHAT_TO_DO}")
    if verify_digest and file_sha256(path) != expected.get("sha256"):
        raise ModelDirError(f"{path}: its bytes changed since export (SHA-256 differs); {WHAT_TO_DO}")


def _check_json(path: Path) -> None:
    try:
        parsed = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelDirError(f"{path}: not valid JSON ({reason}); {WHAT_TO_DO}") from None
    if not isinstance(parsed, dict):
        raise ModelDirError(f"{path}: a JSON {type(parsed).__name__} where an object was written; {WHAT_TO_DO}")


def _check_safetensors(path: Path) -> None:
    """The header's length and JSON, and a data section exactly as long as the header says: a cut copy fails."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        header_length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 2 <= header_length <= size - 8:
            raise ModelDirError(f"{path}: not a safetensors file (no readable header); {WHAT_TO_DO}")
        try:
            header = json.loads(handle.read(header_length))
        except ValueError:
            raise ModelDirError(f"{path}: its safetensors header is damaged; {WHAT_TO_DO}") from None
    ends = [
        entry["data_offsets"][1]
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    expected = 8 + header_length + max(ends, default=0)
    if size != expected:
        raise ModelDirError(f"{path}: {size} bytes where its header describes {expected} (cut short?); {WHAT_TO_DO}")
