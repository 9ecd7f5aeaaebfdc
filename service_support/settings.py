"""The service's settings: each one typed once, here, with its bounds, default and description.

`load_settings()` reads them from the environment (`KEYWORD_<NAME>`) when the service starts; service.py
holds the one instance and hands it to the parts that need it. A bad value stops the start with the
variable's name, rather than failing per request. The variables' documentation is generated from these
fields (`python -m service_support.settings`), and a test keeps service.py's docstring equal to it.
Measured choices: benchmarks/README.md, "Serving". Importing this module imports no BentoML, so the
app and scripts can share the settings and the request types (`service_support.schemas`).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import textwrap

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyword_extractor.common.results import REGISTERED_MODEL
from keyword_extractor.feedback import DEFAULT_URL as FEEDBACK_DEFAULT_URL
from keyword_extractor.model.artifact import PrecisionRequest

ENV_PREFIX = "KEYWORD_"
MAX_KEYWORDS, MAX_BEAMS = 10, 4  # what a request may ask for, whatever the environment says
# Routes that answer without the API token: health and metrics probes.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ServiceSettings(BaseSettings):
    """Every setting of the service; the field `max_text_chars` is the variable `KEYWORD_MAX_TEXT_CHARS`."""

    # an empty variable (KEYWORD_HOST=) means "not set": the default, not a value to refuse
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", validate_default=True, env_ignore_empty=True
    )

    model_tag: str = Field(
        f"{REGISTERED_MODEL}:latest",
        min_length=1,
        description="the BentoML model to serve (a tag or `name:version`); a Bento's own build argument wins",
    )
    max_text_chars: int = Field(1000, ge=1, le=100_000, description="characters per question")
    max_batch_texts: int = Field(256, ge=1, le=100_000, description="questions per `/extract_batch` request")
    max_batch_size: int = Field(32, ge=2, le=1024, description="questions per model call (adaptive batching)")
    # Keep it large: until BentoML has timed a few batches it estimates min(2 s, budget/15) per queued
    # request, so with a budget under 30 s a cold start under a burst of ~15 concurrent requests already
    # answers 503; 60 s tolerates ~29.
    max_latency_ms: int = Field(
        60_000, ge=100, le=600_000, description="queueing budget before the batcher sheds load with 503"
    )
    merge_wait_ms: int = Field(
        20, ge=0, le=10_000, description="how long a merged call waits for as many questions as the previous one"
    )
    timeout_s: int = Field(60, ge=1, le=3600, description="request timeout; answered 504 after it")
    host: str = Field(
        "127.0.0.1",
        description="where `bentoml serve` listens unless `--host` says otherwise: loopback, so that a model "
        "server is never exposed by accident; `0.0.0.0` exposes it (a container's `-e KEYWORD_HOST=0.0.0.0`)",
    )
    api_token: str = Field(
        "",
        repr=False,
        description="when set, every route but /livez, /readyz, /healthz and /metrics needs "
        "`Authorization: Bearer <token>` (401 otherwise)",
    )
    max_body_bytes: int | None = Field(
        None,
        ge=1024,
        le=2**30,
        description="request bodies above this are refused with 413; default: the largest legal batch "
        "(max batch texts × max text chars) even with every character JSON-escaped (6 bytes each), plus room",
    )
    num_beams: int = Field(0, ge=0, le=MAX_BEAMS, description="default beam width; 0: the model directory's")
    model_workers: int = Field(1, ge=1, le=64, description="model processes, each with its own copy of the model")
    # Half the cores per worker by default: the public service, the batching loop and the clients of a
    # loaded server need CPU too, and torch threads that outnumber the idle cores spin-wait on each other
    # (decoder steps measured many times slower with 2 threads on 2 busy cores than with 1).
    torch_threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="torch threads per model worker; default: cores / model workers / 2, at least 1",
    )
    quantize: PrecisionRequest = Field(
        "auto",
        description="`auto`: row-wise int8 Linear layers only where the model directory allows them and this CPU "
        "runs the model's layers faster in int8, timed when the model loads; `int8` and `off` force",
    )
    greedy_loop: bool = Field(
        True, description="greedy requests through the project's greedy loop (same answers as `generate`, faster)"
    )
    feedback_url: str = Field(
        FEEDBACK_DEFAULT_URL,
        description="SQLAlchemy URL of the store of corrections sent to POST /feedback (SQLite file by default; "
        "postgresql+psycopg://… in the deploy/ stack)",
    )

    @field_validator("host")
    @classmethod
    def _an_address(cls, value: str) -> str:
        return str(ipaddress.ip_address(value.strip()))

    @field_validator("api_token", mode="before")
    @classmethod
    def _stripped(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("quantize", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return (value.strip().lower() or "auto") if isinstance(value, str) else value

    @model_validator(mode="after")
    def _threads_per_worker(self) -> ServiceSettings:
        if self.torch_threads is None:
            object.__setattr__(self, "torch_threads", max(1, _cores() // self.model_workers // 2))
        return self

    @model_validator(mode="after")
    def _body_for_the_largest_legal_batch(self) -> ServiceSettings:
        """Legal requests are never refused for their size: `{"texts": [...]}` JSON may escape every character."""
        if self.max_body_bytes is None:
            largest = self.max_batch_texts * (6 * self.max_text_chars + 8) + 4096  # quotes, commas, options
            object.__setattr__(self, "max_body_bytes", min(2**30, largest))
        return self


def variable(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(model_tag: str | None = None) -> ServiceSettings:
    """The settings from the environment; `model_tag` (a Bento's build argument) wins over KEYWORD_MODEL_TAG."""
    overrides = {"model_tag": model_tag} if model_tag else {}
    try:
        return ServiceSettings(**overrides)
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            name = variable(str(problem["loc"][0])) if problem["loc"] else "service settings"
            problems.append(f"{name}={problem.get('input')!r}: {problem['msg']}")
        raise ValueError("; ".join(problems)) from None


def _kind(name: str) -> str:
    """How a variable is written: its type and bounds, as the field declares them."""
    field = ServiceSettings.model_fields[name]
    choices = getattr(field.annotation, "__args__", ())
    if field.annotation is bool:
        return "1 or 0"
    if choices and all(isinstance(choice, str) for choice in choices):
        return " | ".join(choices)
    low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    return f"{low}..{high}" if low is not None else "text"


def documentation(width: int = 100) -> str:
    """One entry per variable: name, how it is written, default, what it does (service.py's docstring holds it)."""
    entries = []
    for name, field in ServiceSettings.model_fields.items():
        value = int(field.default) if field.annotation is bool else field.default  # booleans are written 1 / 0
        default = "derived" if value is None else repr(value)
        text = f"- `{variable(name)}` ({_kind(name)}; default {default}): {field.description}"
        entries.append(textwrap.fill(text, width=width, subsequent_indent="  ", break_on_hyphens=False))
    return "\n".join(entries)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service_support.settings",
        description="Print every KEYWORD_* variable of the service: how it is written, its default, what it does. "
        "With --check, also read them from this environment and say whether the service would start.",
    )
    parser.add_argument("--check", action="store_true", help="validate the current environment's values")
    args = parser.parse_args(argv)
    print(documentation())
    if args.check:
        try:
            settings = load_settings()
        except ValueError as error:
            raise SystemExit(f"the service would not start: {error}") from None
        print(f"\nthis environment is valid: {settings!r}")


if __name__ == "__main__":
    main()
