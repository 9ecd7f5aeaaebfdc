"""Command-line helpers shared by the project's CLIs.

`add_model_options` turns a pydantic model's fields into argparse options (type, choices, help and
default from the field), so a training option is declared once, in `config.TrainConfig`, and every
command line that exposes it follows. Options the user does not give stay out of the parsed result:
the model's own defaults and presets decide them.

The options several commands share (`--model-dir`, a labelled file, `--batch-size`, `--device`) are declared
here too,
once, with the same name, type and wording everywhere.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from keyword_extractor.common.paths import PROJECT_ROOT

Model = TypeVar("Model", bound=BaseModel)


DEFAULT_LABELLED_FILE = PROJECT_ROOT / "data" / "test.tsv"  # what a scoring command reads unless told


def add_model_dir(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, required: bool = True, help: str = ""
) -> None:
    """`--model-dir`: a keyword model directory (the one with keyword_extractor.json)."""
    what = help or "keyword model directory (with keyword_extractor.json)"
    parser.add_argument("--model-dir", type=Path, required=required, help=what)


def add_labelled_file(
    parser: argparse.ArgumentParser, flag: str = "--data", required: bool = False, help: str = ""
) -> None:
    """A UTF-8 `query<TAB>keyword` file; data/test.tsv unless required."""
    default = None if required else DEFAULT_LABELLED_FILE
    what = help or "labelled questions, a UTF-8 'query<TAB>keyword' TSV"
    parser.add_argument(
        flag, type=Path, required=required, default=default, help=what + ("" if required else " [%(default)s]")
    )


def add_device(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """`--device`: where the model runs."""
    parser.add_argument("--device", default=default, help="cpu, cuda, cuda:1 … [default: cuda when available]")


def add_batch_size(parser: argparse.ArgumentParser, default: int | None, help: str = "") -> None:
    """`--batch-size`: questions per model call, a whole number ≥ 1 (None: the model's own setting)."""
    shown = "the model's setting" if default is None else "%(default)s"
    what = help or "questions per model call"
    parser.add_argument("--batch-size", type=positive_int, default=default, help=f"{what} [default: {shown}]")


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1, with a message that names the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _plain_type(annotation: Any) -> Any:
    """`int | None` → int; other annotations unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_model_options(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    presets: dict[str, dict] | None = None,
    config_option: bool = True,
    aliases: dict[str, str] | None = None,
    group_prefix: str = "",
) -> None:
    """One option per field of `model` (and `--config FILE`), in argparse groups named by the fields' `group`.

    Presets (name → field values) are shown in the help next to the default they replace. `aliases`
    gives a field a shorter flag beside its own (`train_path` → `--train` as well as `--train-path`).
    `group_prefix` heads every group's title (the flow's training options: "training: model", …).
    """
    if config_option:
        parser.add_argument(
            "--config",
            help="JSON file of these options (e.g. a run's train_config.json); the command line overrides it",
        )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        group_name = str(extra.get("group", "options"))
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_prefix + group_name)
        flags = [flag for flag in ((aliases or {}).get(name), option_name(name)) if flag]
        _add_field_option(groups[group_name], flags, name, field, _shown_defaults(name, field.default, presets))


def _shown_defaults(name: str, default: Any, presets: dict[str, dict] | None) -> str:
    shown = [f"default: {default}"]
    for preset, values in (presets or {}).items():
        if name in values:
            shown.append(f"{preset}: {values[name]}")
    return "; ".join(shown)


def _add_field_option(
    group: argparse._ArgumentGroup, flags: list[str], name: str, field: FieldInfo, defaults: str
) -> None:
    """bool → --flag/--no-flag, Literal → choices, list[...] → repeatable, numbers typed, the rest text."""
    help_text = f"{field.description or ''} [{defaults}]".replace("%", "%%")
    kind = _plain_type(field.annotation)
    common: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
    if kind is bool:
        group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
    elif typing.get_origin(kind) is Literal:
        group.add_argument(*flags, choices=typing.get_args(kind), **common)
    elif typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind) or (str,)
        group.add_argument(*flags, action="append", type=_argparse_type(item), metavar=name.upper(), **common)
    else:
        group.add_argument(*flags, type=_argparse_type(kind), metavar=name.upper(), **common)


def _argparse_type(kind: Any) -> Any:
    return kind if kind in (int, float) else str


def model_from_args(namespace: argparse.Namespace, model: type[Model]) -> Model:
    """The --config file's fields, overridden by those given on the command line; the model's defaults fill the rest."""
    given = {name: value for name, value in vars(namespace).items() if name in model.model_fields}
    try:
        return model(**{**load_json_options(getattr(namespace, "config", None)), **given})
    except ValidationError as error:
        raise SystemExit(f"error: invalid options:\n{error}") from None


def load_json_options(path: str | Path | None) -> dict[str, Any]:
    """A `--config` file's fields (a JSON object), with the file named in the error when it is not one."""
    if path is None:
        return {}
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"error: --config {path}: {error}") from None
    if not isinstance(loaded, dict):
        raise SystemExit(f"error: --config {path}: expected a JSON object of options, found {type(loaded).__name__}")
    return loaded
