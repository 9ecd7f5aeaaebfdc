"""Shared fixtures: the bundled data, a tiny base model and a briefly trained tiny model."""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from keyword_extractor.common.paths import PROJECT_ROOT

TRAIN_TSV = PROJECT_ROOT / "data" / "train.tsv"
TEST_TSV = PROJECT_ROOT / "data" / "test.tsv"


def run_module(module: str, *args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m module args` from the project root, the way a user would."""
    merged = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=merged,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    from keyword_extractor.model.tiny import build_tiny_base

    return build_tiny_base(TRAIN_TSV, tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="session")
def tiny_training_run(tmp_path_factory) -> Path:
    """A tiny model trained for a few steps on a slice of the data (output dir of the run)."""
    output = tmp_path_factory.mktemp("tiny-run")
    result = run_module(
        "keyword_extractor.training",
        "--train",
        str(TRAIN_TSV),
        "--base-model",
        "tiny",
        "--output-dir",
        str(output),
        "--limit-train-rows",
        "256",
        "--epochs",
        "2",
        "--batch-size",
        "16",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output


@pytest.fixture(scope="session")
def tiny_run_data(tiny_training_run):
    """The data module `tiny_training_run` trained on (same rows, split and tokenizer), set up for fit."""
    from transformers import AutoTokenizer

    from keyword_extractor.training.datamodule import EncodingSettings, KeywordDataModule

    tokenizer = AutoTokenizer.from_pretrained(tiny_training_run / "model")
    data = KeywordDataModule(
        tokenizer,
        TRAIN_TSV,
        settings=EncodingSettings.from_tokenizer(tokenizer),
        batch_size=16,
        seed=42,
        limit_rows=256,
    )
    data.setup("fit")
    return data


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_training_run) -> Path:
    return tiny_training_run / "model"


@pytest.fixture(scope="session")
def talkative_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model, decoding without punctuation-only and space-only tokens.

    The briefly trained tiny model answers '?' to everything, which post-processing drops, so every
    answer would be []. With those tokens suppressed in its generation_config.json, grounded decoding
    must copy a piece of the question, different from question to question.
    """
    from transformers import AutoTokenizer

    from keyword_extractor.model import integrity
    from keyword_extractor.model.grounded import token_texts

    target = tmp_path_factory.mktemp("talkative") / "model"
    shutil.copytree(tiny_model_dir, target)
    texts = token_texts(AutoTokenizer.from_pretrained(target))
    assert texts is not None
    silent = [i for i, text in enumerate(texts) if text is not None and "," not in text and not re.search(r"\w", text)]
    config = json.loads((target / "generation_config.json").read_text())
    config["suppress_tokens"] = silent
    (target / "generation_config.json").write_text(json.dumps(config, indent=2))
    integrity.record(target, ["generation_config.json"])  # changed on purpose: its new digest
    return target


@pytest.fixture(scope="session")
def selected_model_dir(talkative_model_dir, tmp_path_factory) -> Path:
    """The talkative model with a span selector fitted on 600 training rows and its answers to 100 more."""
    from keyword_extractor.data.tsv import load_pairs
    from keyword_extractor.inference.extractor import KeywordExtractor
    from keyword_extractor.model import span_selector
    from keyword_extractor.text.keywords import clean_keywords, parse_keywords

    target = tmp_path_factory.mktemp("selected") / "model"
    shutil.copytree(talkative_model_dir, target)
    extractor = KeywordExtractor(target)
    frame = load_pairs(TRAIN_TSV)
    train, val = frame.iloc[:600], frame.iloc[600:700]
    golds = [clean_keywords(parse_keywords(cell)) for cell in frame["keyword"]]
    selector = span_selector.fit(
        extractor.analyser.parse_batch(train["query"].tolist()),
        golds[:600],
        extractor.analyser.parse_batch(val["query"].tolist()),
        golds[600:700],
        extractor.extract(val["query"].tolist()),
        limit=extractor.settings.max_keywords,
        seed=42,
    )
    assert selector is not None
    selector.save(target)
    return target


@functools.cache
def migrated_prefect_database() -> Path:
    """A Prefect SQLite database with every migration applied, made once per test session.

    A Prefect server on an empty database migrates it first (about 10 s of each fresh ephemeral start);
    every test's own PREFECT_HOME starts from a copy of this one instead.
    """
    home = Path(tempfile.mkdtemp(prefix="prefect-template-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {"PREFECT_HOME": str(home)}
    prefect = Path(sys.executable).with_name("prefect")
    done = subprocess.run(
        [str(prefect), "server", "database", "upgrade", "-y"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and (home / "prefect.db").is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    return home / "prefect.db"


def prefect_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a real Prefect run that touches no real Prefect set-up: own PREFECT_HOME, ephemeral API.

    A new home gets a copy of the session's migrated database (`migrated_prefect_database`).
    """
    database = Path(home) / "prefect.db"
    if not database.exists():
        template = migrated_prefect_database()
        database.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal"):  # the write-ahead log, if the upgrade left one, belongs to the copy
            if template.with_name(template.name + suffix).is_file():
                shutil.copyfile(template.with_name(template.name + suffix), database.with_name(database.name + suffix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PYTHONPATH=str(PROJECT_ROOT),
        PYTHONUNBUFFERED="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        **extra,
    )
    return env
