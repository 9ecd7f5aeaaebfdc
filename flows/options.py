"""A flow's command line from the flow itself: its signature (types, defaults) and docstring (descriptions).

The same source Prefect reads for a deployment's parameter form, so `--help` and the UI say the same.
`TrainConfig`, a parameter of both flows, is offered field by field through `common.cli`.
"""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from prefect.utilities.callables import parameter_schema
from pydantic import BaseModel, Field, create_model

from keyword_extractor.common.cli import add_model_options, model_from_args
from keyword_extractor.model.config import PRESETS, TrainConfig

SHORT_FLAGS = {"train_path": "--train", "test_path": "--test"}  # the flags README has always used


def flow_options(function: Any, skip: tuple[str, ...] = ("training",)) -> type[BaseModel]:
    """The flow function's parameters (but `skip`) as a pydantic model, with the docstring's descriptions."""
    schema = parameter_schema(function).properties
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name not in skip:
            description = schema[name].get("description", "")
            field = Field(parameter.default, description=description, json_schema_extra={"group": "pipeline"})
            fields[name] = (parameter.annotation, field)
    return create_model(f"{function.__name__}_options", **fields)


# shown in the usage line where the flow has them
COMMON_OPTIONS = {
    "--train": "FILE",
    "--test": "FILE",
    "--base-model": "tiny|HUB_ID|DIR",
    "--epochs": "N",
    "--run-name": "NAME",
    "--min-new": "N",
}


def flow_parser(function: Any, prog: str, description: str) -> argparse.ArgumentParser:
    """Options of the flow's own parameters, then one per TrainConfig field under "training: …" headings.

    The usage line shows the common options only: the full one, every option spelled out, ran to 55 lines.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Training options are the fields of `training` in a deployment (the same names, with _ for -).",
    )
    add_model_options(parser, flow_options(function), config_option=False, aliases=SHORT_FLAGS)
    add_model_options(parser, TrainConfig, PRESETS, group_prefix="training: ")
    common = [f"[{flag} {value}]" for flag, value in COMMON_OPTIONS.items() if flag in parser._option_string_actions]
    parser.usage = f"%(prog)s {' '.join(common)} [any option below]"
    return parser


def flow_arguments(function: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for the flow: what the command line gave, the signature's defaults for the rest."""
    own = model_from_args(args, flow_options(function)).model_dump()
    return {**own, "training": model_from_args(args, TrainConfig)}
