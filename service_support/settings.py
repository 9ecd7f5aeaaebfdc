"""The service's settings, read from the environment once, when the service starts.

A bad value stops the start with the variable's name, rather than failing per request. Documented in
service.py's docstring; measured choices in benchmarks/README.md, "Serving".
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from keyword_extractor.common.results import REGISTERED_MODEL
from keyword_extractor.model.artifact import requested_precision

MAX_KEYWORDS, MAX_BEAMS = 10, 4  # what a request may ask for, whatever the environment says
# Routes that answer without the API token: health and metrics probes.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})


def env_int(name: str, default: int, low: int, high: int) -> int:
    """A bounded integer setting from the environment."""
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high}")
    return value


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class ServiceSettings:
    model_tag: str
    max_text_chars: int
    max_batch_texts: int
    max_batch_size: int  # questions per generate() call
    # Queueing budget before the batcher sheds load with 503. Keep it large: until BentoML has timed a few
    # batches it estimates min(2 s, budget/15) per queued request, so with a budget under 30 s a cold start
    # under a burst of ~15 concurrent requests already answers 503; 60 s tolerates ~29.
    max_latency_ms: int
    merge_wait_ms: int  # how long a merged call waits for as many questions as the previous one carried
    timeout_s: int
    # Where `bentoml serve` listens unless --host says otherwise: loopback, so that a model server is never
    # exposed by accident. KEYWORD_HOST=0.0.0.0 (or a container's `-e KEYWORD_HOST=0.0.0.0`) exposes it.
    host: str
    api_token: str  # set: every route but OPEN_PATHS needs `Authorization: Bearer <token>`
    # Request bodies above this are refused with 413 before they are read (a batch of 256 questions of 1000
    # characters is about 800 KB of JSON).
    max_body_bytes: int
    num_beams: int  # default beam width; 0: the model directory's
    model_workers: int
    # Half the cores per worker by default: the public service, the batching loop and the clients of a
    # loaded server need CPU too, and torch threads that outnumber the idle cores spin-wait on each other
    # (decoder steps measured many times slower with 2 threads on 2 busy cores than with 1).
    torch_threads: int
    quantize: str  # auto | off | int8 (keyword_extractor.inference.serving_precision)
    greedy_loop: bool

    @classmethod
    def from_env(cls, model_tag: str | None = None) -> ServiceSettings:
        """`model_tag`: the Bento argument, which wins over KEYWORD_MODEL_TAG."""
        workers = env_int("KEYWORD_MODEL_WORKERS", 1, 1, 64)
        return cls(
            model_tag=model_tag or os.environ.get("KEYWORD_MODEL_TAG") or f"{REGISTERED_MODEL}:latest",
            max_text_chars=env_int("KEYWORD_MAX_TEXT_CHARS", 1000, 1, 100_000),
            max_batch_texts=env_int("KEYWORD_MAX_BATCH_TEXTS", 256, 1, 100_000),
            max_batch_size=env_int("KEYWORD_MAX_BATCH_SIZE", 32, 2, 1024),
            max_latency_ms=env_int("KEYWORD_MAX_LATENCY_MS", 60_000, 100, 600_000),
            merge_wait_ms=env_int("KEYWORD_MERGE_WAIT_MS", 20, 0, 10_000),
            timeout_s=env_int("KEYWORD_TIMEOUT_S", 60, 1, 3600),
            host=str(ipaddress.ip_address(os.environ.get("KEYWORD_HOST", "127.0.0.1").strip())),
            api_token=os.environ.get("KEYWORD_API_TOKEN", "").strip(),
            max_body_bytes=env_int("KEYWORD_MAX_BODY_BYTES", 2**20, 1024, 2**30),
            num_beams=env_int("KEYWORD_NUM_BEAMS", 0, 0, MAX_BEAMS),
            model_workers=workers,
            torch_threads=env_int("KEYWORD_TORCH_THREADS", max(1, _cores() // workers // 2), 1, 1024),
            quantize=requested_precision(),  # KEYWORD_QUANTIZE: auto (default), off or int8
            greedy_loop=bool(env_int("KEYWORD_GREEDY_LOOP", 1, 0, 1)),
        )


def _bento_argument(name: str) -> str | None:
    """A Bento argument (`bentoml build --arg`, pinned by bento_models.build_bento), None outside a Bento."""
    import bentoml

    return getattr(bentoml.use_arguments(), name, None)


SETTINGS = ServiceSettings.from_env(_bento_argument("model_tag"))
