"""HTTP client of the keyword service (`service.py`), for the Streamlit app and scripts.

Every failure becomes a `ServiceError` whose message a person can act on (the service is down, it
timed out, it refused the request and why), so that callers show a message instead of a stack trace.
The client only speaks HTTP: it needs httpx, not torch or BentoML.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_TIMEOUT_S = 120.0  # above the service's own request timeout (60 s), so that its 503/504 reaches us first
CONNECT_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 3.0  # BentoML holds /readyz open while the model loads: a short wait means "not ready yet"
DEFAULT_CHUNK_SIZE = 64  # questions per /extract_batch call: small enough for a lively progress bar

ErrorKind = Literal["input", "invalid_url", "unreachable", "timeout", "rejected", "server", "protocol"]
ProgressCallback = Callable[[int, int], None]


class ServiceError(Exception):
    """A request to the keyword service failed; `message` is meant to be shown to a person as is."""

    def __init__(self, message: str, kind: ErrorKind, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status_code = status_code


@dataclass(frozen=True)
class ModelRef:
    """Which model answered: the registered name, version and alias."""

    name: str
    version: str
    alias: str

    @property
    def label(self) -> str:
        alias = f" ({self.alias})" if self.alias else ""
        return f"{self.name} v{self.version}{alias}"


@dataclass(frozen=True)
class ModelInfo:
    """`GET /model_info`, with the fields the app needs pulled out; `raw` keeps everything else."""

    model: ModelRef
    tag: str
    test_f1: float | None
    base_model: str
    num_beams: int
    max_num_beams: int
    filter_ungrounded: bool
    max_keywords: int
    max_text_chars: int
    max_batch_texts: int
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Options:
    """Per-request decoding options; `None` leaves the choice to the service (the model's default)."""

    max_keywords: int | None = None
    filter_ungrounded: bool | None = None
    num_beams: int | None = None

    def as_json(self) -> dict[str, Any]:
        # The service refuses an explicit null, so options left to it are left out.
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class Health:
    """What `/readyz` says; `detail` explains a 'not ready' in words."""

    ready: bool
    detail: str


@dataclass(frozen=True)
class Extraction:
    keywords: list[str]
    model: ModelRef
    elapsed_s: float  # round trip as the caller saw it


@dataclass(frozen=True)
class BatchExtraction:
    keywords: list[list[str]]  # one list per question, in input order
    model: ModelRef
    elapsed_s: float


def normalize_url(url: str) -> str:
    """'127.0.0.1:3000/' -> 'http://127.0.0.1:3000'; refuses what cannot be an HTTP address."""
    url = url.strip().rstrip("/")
    if not url:
        raise ServiceError("The service URL is empty: enter e.g. http://127.0.0.1:3000.", "invalid_url")
    if "://" not in url:
        url = f"http://{url}"
    try:
        parsed = httpx.URL(url) if url.startswith(("http://", "https://")) else None
    except httpx.InvalidURL as error:
        raise ServiceError(f"'{url}' is not a valid address: {error}.", "invalid_url") from error
    if parsed is None or not parsed.host:
        raise ServiceError(f"'{url}' is not an http:// or https:// address.", "invalid_url")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ServiceError(f"'{url}' is not a valid address: port {parsed.port} is not in 1–65535.", "invalid_url")
    return url


def auth_headers() -> dict[str, str]:
    """The service's bearer token when KEYWORD_API_TOKEN is set (the service then requires it)."""
    token = os.environ.get("KEYWORD_API_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _client(base_url: str, timeout_s: float) -> httpx.Client:
    timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
    return httpx.Client(base_url=normalize_url(base_url), timeout=timeout, headers=auth_headers())


def _base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")  # httpx keeps a trailing slash on base URLs


def _error_text(response: httpx.Response) -> str:
    """The service's `error` text; BentoML's own `detail`; else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "detail"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key].strip()
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase


def _request(client: httpx.Client, method: str, path: str, json: Any = None) -> Any:
    """One call; the JSON answer, or a ServiceError that says what went wrong in words."""
    url = _base(client) + path
    try:
        response = client.request(method, path, json=json)
    except httpx.TimeoutException as error:
        seconds = client.timeout.read if not isinstance(error, httpx.ConnectTimeout) else client.timeout.connect
        raise ServiceError(
            f"The keyword service did not answer within {seconds:g} s ({url}). It may be overloaded or still "
            "loading the model: try again in a moment, or send fewer questions at once.",
            "timeout",
        ) from error
    except httpx.TransportError as error:
        raise ServiceError(
            f"Cannot reach the keyword service at {_base(client)}: is it running? Start it with "
            f"`bentoml serve` in the project directory, or correct the URL. ({type(error).__name__}: {error})",
            "unreachable",
        ) from error
    except httpx.RequestError as error:  # redirects, undecodable bodies: the peer is not behaving like the service
        raise ServiceError(f"{url}: {type(error).__name__}: {error}", "protocol") from error
    if response.status_code == 404:
        raise ServiceError(
            f"{url} answered 404 Not Found: this URL does not look like the keyword service.", "protocol", 404
        )
    if 400 <= response.status_code < 500:
        raise ServiceError(
            f"The service refused the request (HTTP {response.status_code}): {_error_text(response)}",
            "rejected",
            response.status_code,
        )
    if response.status_code in (503, 504):
        raise ServiceError(
            f"The service is busy or still starting (HTTP {response.status_code}): {_error_text(response)}. "
            "Try again in a moment.",
            "server",
            response.status_code,
        )
    if response.status_code >= 500:
        raise ServiceError(
            f"The service failed (HTTP {response.status_code}): {_error_text(response)}", "server", response.status_code
        )
    try:
        return response.json()
    except ValueError as error:
        raise ServiceError(f"{url} did not answer JSON: is this the keyword service?", "protocol") from error


def _model_ref(body: Any, url: str) -> ModelRef:
    try:
        model = body["model"] if "model" in body else body
        return ModelRef(name=str(model["name"]), version=str(model["version"]), alias=str(model.get("alias") or ""))
    except (KeyError, TypeError) as error:
        raise ServiceError(
            f"{url} answered without naming its model: is this the keyword service?", "protocol"
        ) from error


def _keyword_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("keywords must be a list of strings")
    return value


def health(base_url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> Health:
    """Ready or not, from BentoML's `/readyz`; never raises (a health light has no error path)."""
    try:
        with _client(base_url, timeout_s) as client:
            response = client.get("/readyz")
    except ServiceError as error:
        return Health(False, error.message)
    except httpx.TimeoutException:
        return Health(False, f"no answer within {timeout_s:g} s: the model may still be loading")
    except httpx.TransportError as error:
        return Health(False, f"unreachable ({type(error).__name__})")
    if response.status_code == 200:
        return Health(True, "ready")
    return Health(False, f"not ready (HTTP {response.status_code})")


def model_info(base_url: str, timeout_s: float = 10.0) -> ModelInfo:
    """What is served and how it decodes by default; the app builds its option widgets from it."""
    with _client(base_url, timeout_s) as client:
        body = _request(client, "GET", "/model_info")
        try:
            decoding, limits = body["decoding"], body["limits"]
            return ModelInfo(
                model=_model_ref(body, _base(client)),
                tag=str(body.get("tag", "")),
                test_f1=None if body.get("test_f1") is None else float(body["test_f1"]),
                base_model=str(body.get("base_model", "")),
                num_beams=int(decoding["num_beams"]),
                max_num_beams=int(decoding["max_num_beams"]),
                filter_ungrounded=bool(decoding["filter_ungrounded"]),
                max_keywords=int(decoding["max_keywords"]),
                max_text_chars=int(limits["max_text_chars"]),
                max_batch_texts=int(limits["max_batch_texts"]),
                raw=body,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ServiceError(
                f"{_base(client)}/model_info answered an unexpected document ({type(error).__name__}: {error}): "
                "is this the keyword service?",
                "protocol",
            ) from error


def extract(base_url: str, text: str, options: Options = Options(), timeout_s: float = DEFAULT_TIMEOUT_S) -> Extraction:
    """Keywords of one question, with the model that answered and the round-trip time."""
    if not text.strip():
        raise ServiceError("The question is empty: type a question first.", "input")
    started = time.perf_counter()
    with _client(base_url, timeout_s) as client:
        body = _request(client, "POST", "/extract", json={"text": text, **options.as_json()})
        try:
            keywords = _keyword_list(body["keywords"])
        except (KeyError, TypeError) as error:
            raise ServiceError(f"{_base(client)}/extract answered without keywords.", "protocol") from error
        return Extraction(keywords, _model_ref(body, _base(client)), time.perf_counter() - started)


def extract_batch(
    base_url: str,
    texts: Sequence[str],
    options: Options = Options(),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_progress: ProgressCallback | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> BatchExtraction:
    """Keywords of many questions through `/extract_batch`, `chunk_size` at a time, in input order.

    `on_progress(done, total)` runs after every chunk. Use a `chunk_size` no larger than the service's
    `max_batch_texts` (see `model_info`), or it answers 400. If the served model changes between
    chunks (a redeploy), the answers would mix two models: that is an error, not a silent mix.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    started = time.perf_counter()
    results: list[list[str]] = []
    model: ModelRef | None = None
    with _client(base_url, timeout_s) as client:
        for start in range(0, len(texts), chunk_size):
            chunk = list(texts[start : start + chunk_size])
            where = f"questions {start + 1}–{start + len(chunk)}"
            try:
                body = _request(client, "POST", "/extract_batch", json={"texts": chunk, **options.as_json()})
            except ServiceError as error:
                raise ServiceError(f"{where}: {error.message}", error.kind, error.status_code) from error
            try:
                answers = [_keyword_list(item) for item in body["keywords"]]
            except (KeyError, TypeError) as error:
                raise ServiceError(f"{where}: the service answered without keyword lists.", "protocol") from error
            if len(answers) != len(chunk):
                raise ServiceError(
                    f"{where}: the service answered {len(answers)} keyword lists for {len(chunk)} questions.",
                    "protocol",
                )
            answered_by = _model_ref(body, _base(client))
            if model is not None and answered_by != model:
                raise ServiceError(
                    f"{where}: the served model changed during the batch ({model.label} → {answered_by.label}); "
                    "run the batch again.",
                    "protocol",
                )
            model = answered_by
            results.extend(answers)
            if on_progress is not None:
                on_progress(len(results), len(texts))
    if model is None:  # no questions: nothing was asked
        model = ModelRef("", "", "")
    return BatchExtraction(results, model, time.perf_counter() - started)
