"""A checkpoint resumes only the run it came from: same data, same tokenizer, same row selection.

Resuming a checkpoint on other data trains a model that matches neither (the tiny tokenizer is rebuilt
from the training file, so its token ids shift under the old weights: test F1 0.50 against 0.61 for a
resume on the same data). A fresh run writes what identifies it beside its checkpoints; a resume
compares and refuses a mismatch, saying what changed and how to start fresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from keyword_extractor.common.files import file_sha256, write_atomic
from keyword_extractor.model.config import TrainConfig

log = logging.getLogger(__name__)

IDENTITY_FILE = "resume_identity.json"
CHECKPOINTS_DIR = "checkpoints"  # under a run's output directory
LAST_CHECKPOINT = "last"  # checkpoints/last.ckpt: the end of the latest epoch, what a resume continues from
LAST_CHECKPOINT_FILE = f"{LAST_CHECKPOINT}.ckpt"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")
ROW_OPTIONS = ("limit_train_rows", "val_fraction", "seed", "augment_copies", "max_source_length", "max_target_length")


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR


def last_checkpoint(output_dir: str | Path) -> Path:
    """The checkpoint an interrupted run resumes from (the training CLI's --resume, the fine-tune task)."""
    return checkpoints_dir(output_dir) / LAST_CHECKPOINT_FILE


class ResumeMismatch(ValueError):
    """The checkpoint was trained on other data or another tokenizer than this run's."""


def run_identity(config: TrainConfig, train: str, val: str | None, base_dir: Path) -> dict[str, str]:
    """What a checkpoint depends on besides the code: the data files, the tokenizer, the options that pick rows."""
    tokenizer = hashlib.sha256()
    for name in TOKENIZER_FILES:
        if (base_dir / name).is_file():
            tokenizer.update(name.encode() + file_sha256(base_dir / name).encode())
    identity = {"train": file_sha256(Path(train)), "val": file_sha256(Path(val)) if val else ""}
    identity["tokenizer"] = tokenizer.hexdigest()
    identity.update({name: str(getattr(config, name)) for name in ROW_OPTIONS})
    return identity


def check_or_record(checkpoints: Path, identity: dict[str, str], resuming: bool, writer: bool) -> None:
    """On a fresh start, record the identity (by the writing rank); on a resume, refuse another identity."""
    path = checkpoints / IDENTITY_FILE
    if not resuming:
        if writer:
            checkpoints.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(identity, indent=2))
        return
    if not path.is_file():
        log.warning("%s has no %s (an older run): resuming without checking its data", checkpoints, IDENTITY_FILE)
        return
    stored = json.loads(path.read_text(encoding="utf-8"))
    changed = [name for name in identity if stored.get(name) != identity[name]]
    if changed:
        what = "; ".join(f"{name}: {str(stored.get(name))[:12]} then, {identity[name][:12]} now" for name in changed)
        raise ResumeMismatch(
            f"cannot resume {checkpoints / LAST_CHECKPOINT_FILE}: it was trained on other data or settings ({what}). "
            f"Resume with the same files and options, or start fresh: another --output-dir (in the pipeline, "
            f"another --run-name), or delete {checkpoints}."
        )
