"""TrainConfig: one typed place for every training option, its presets, and the command lines built from it."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import subprocess
import sys

import pytest
from pydantic import ValidationError

from flows import train_pipeline
from keyword_extractor.common.cli import model_from_args
from keyword_extractor.model.config import DEFAULT_BASE_MODEL, PRESETS, TINY, TrainConfig, default
from keyword_extractor.training import cli as train
from tests.conftest import PROJECT_ROOT


def test_defaults_are_the_kobart_recipe_and_the_tiny_preset_fills_only_unset_fields():
    kobart = TrainConfig()
    recipe = (kobart.base_model, kobart.epochs, kobart.batch_size, kobart.learning_rate)
    assert recipe == (DEFAULT_BASE_MODEL, 2, 8, 3e-5)
    tiny = TrainConfig(base_model=TINY)
    assert {name: getattr(tiny, name) for name in PRESETS[TINY]} == PRESETS[TINY]
    assert tiny.weight_decay == kobart.weight_decay == default("weight_decay")  # not in the preset: shared
    assert TrainConfig(base_model=TINY, epochs=3, learning_rate=5e-4).epochs == 3
    assert TrainConfig(base_model=TINY, epochs=None).epochs == PRESETS[TINY]["epochs"]  # None: unset (a form)


def test_invalid_options_are_refused_with_the_field_named():
    wrong = (({"epochs": 0}, "epochs"), ({"schedule": "cosine"}, "schedule"), ({"quantise": "int8"}, "quantise"))
    for bad, field in wrong:
        with pytest.raises(ValidationError, match=field):
            TrainConfig(**bad)
    with pytest.raises(ValidationError):
        TrainConfig().epochs = 5  # frozen: a run's config cannot drift after it is written


def test_the_json_file_round_trips(tmp_path):
    config = TrainConfig(base_model=TINY, epochs=3, quantize="auto", devices="-1")
    path = config.save(tmp_path / "train_config.json")
    assert TrainConfig.load(path) == config
    assert json.loads(path.read_text())["epochs"] == 3


def test_the_training_command_line_has_one_option_per_field_and_the_config_file_under_it(tmp_path):
    parser = train.build_parser()
    options = {action.dest for action in parser._actions}
    assert set(TrainConfig.model_fields) <= options
    config_file = TrainConfig(base_model=TINY, epochs=3, batch_size=4).save(tmp_path / "c.json")
    args = parser.parse_args(["--train", "t.tsv", "--config", str(config_file), "--epochs", "5", "--no-span-selector"])
    config = train.config_from(args)
    assert (config.epochs, config.batch_size, config.span_selector) == (5, 4, False)  # line > file > preset
    assert config.learning_rate == PRESETS[TINY]["learning_rate"]


def test_the_flow_command_line_offers_the_same_training_options():
    flow_options = {action.dest for action in train_pipeline.build_parser()._actions}
    assert set(TrainConfig.model_fields) <= flow_options


def test_the_flow_command_line_is_the_flows_own_parameters_with_their_defaults_and_descriptions():
    """Written once in the flow's signature and docstring; the deployment form and --help follow it."""
    parameters = dict(inspect.signature(train_pipeline.train_pipeline.fn).parameters)
    parameters.pop("training")
    parser = train_pipeline.build_parser()
    assert set(parameters) <= {action.dest for action in parser._actions}
    untouched = train_pipeline.pipeline_options()(**{})
    assert untouched.model_dump() == {name: parameter.default for name, parameter in parameters.items()}
    given = model_from_args(
        parser.parse_args(["--train", "a.tsv", "--test-path", "b.tsv", "--no-build", "--max-keywords", "4"]),
        train_pipeline.pipeline_options(),
    )
    assert (given.train_path, given.test_path, given.build, given.max_keywords) == ("a.tsv", "b.tsv", False, 4)
    assert given.promotion_margin == parameters["promotion_margin"].default  # not given: the signature's
    help_text = parser.format_help()
    assert "validation limit on keywords per row" in help_text  # from the flow's docstring
    # the usage line was 55 lines of every option; the training options sit under "training: …" headings
    usage = help_text.split("\n\n", 1)[0]
    assert usage.count("\n") == 0 and "[--train FILE]" in usage and "[--base-model tiny|HUB_ID|DIR]" in usage
    headings = [line for line in help_text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings[:2] == ["options:", "pipeline:"] and all(h.startswith("training: ") for h in headings[2:])
    assert len(headings) > 3


@pytest.mark.parametrize(
    ("module", "option"),
    [
        ("keyword_extractor.training", "--learning-rate"),
        ("flows.train_pipeline", "--learning-rate"),
        ("keyword_extractor.training.export", "--checkpoint"),
        ("keyword_extractor.evaluation", "--test"),
        ("keyword_extractor.inference.predict", "--input"),
        ("keyword_extractor.data.validation", "--train"),
        ("keyword_extractor.integrations.compare", "--diff"),
        ("keyword_extractor.integrations.bento_models", "import-registry"),
        ("flows.run", "--set"),
    ],
)
def test_help_answers_without_loading_torch_or_lightning(module, option):
    """--help used to wait for torch, Lightning or Prefect's flow machinery (6-12 s); every CLI answers first."""
    code = (
        f"import runpy, sys\nsys.argv = ['{module}', '--help']\n"
        f"try:\n    runpy.run_module('{module}', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'pytorch_lightning', 'transformers', 'mlflow') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert option in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    if option == "--learning-rate":
        assert "tiny: 0.001" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout[-500:] + result.stderr[-2000:]


def test_every_command_the_readme_names_exists():
    """README's `python -m …` modules answer --help and its `make …` targets exist, as written."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    modules = sorted(set(re.findall(r"python -m ([a-z_][a-z_.]*[a-z_])", readme)))
    targets = sorted(set(re.findall(r"(?:^|`)make ([a-z]+)", readme, re.MULTILINE)))
    assert "flows.train_pipeline" in modules and {"pipeline", "test"} <= set(targets)
    for module in modules:
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and "usage:" in done.stdout, (module, done.stderr[-1000:])
    for target in targets:
        done = subprocess.run(["make", "-n", target], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (target, done.stderr)


def test_run_options_merge_into_the_deployments_parameters_field_by_field():
    """`prefect deployment run --params` replaced the whole training object (accelerator cpu → auto)."""
    from flows.run import merged, parse_setting

    deployment = {"training": {"base_model": "tiny", "accelerator": "cpu"}, "build": True}
    given = merged(parse_setting("training.epochs=12"), parse_setting("force_promotion=true"))
    assert given == {"training": {"epochs": 12}, "force_promotion": True}
    assert merged(deployment, given) == {
        "training": {"base_model": "tiny", "accelerator": "cpu", "epochs": 12},
        "build": True,
        "force_promotion": True,
    }
    assert deployment["training"] == {"base_model": "tiny", "accelerator": "cpu"}  # not changed in place
    assert parse_setting("run_name=nightly") == {"run_name": "nightly"}  # not JSON: taken as text
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=VALUE"):
        parse_setting("epochs")
