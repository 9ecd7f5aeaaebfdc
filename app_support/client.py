"""HTTP client of the keyword service (`service.py`), for the Streamlit app and scripts.

Every failure becomes a `ServiceError` whose message a person can act on (the service is down, it
timed out, it refused the request and why), so that callers show a message instead of a stack trace.
The client only speaks HTTP (httpx, not torch or BentoML), with the service's own request and response
types (`service_support.schemas`, pydantic only): an option the service would refuse is refused here
first, and an answer that is not the service's shape is a clear error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from service_support.schemas import (
    ExtractBatchResponse,
    ExtractResponse,
    FeedbackReceipt,
    FeedbackRequest,
    ModelRef,
    Options,
)
from service_support.schemas import ModelInfo as ServedModelInfo

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_TIMEOUT_S = 120.0  # above the service's own request timeout (60 s), so that its 503/504 reaches us first
CONNECT_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 3.0  # BentoML holds /readyz open while the model loads: a short wait means "not ready yet"
DEFAULT_CHUNK_SIZE = 64  # questions per /extract_batch call: small enough for a lively progress bar

ErrorKind = Literal["input", "invalid_url", "unreachable", "timeout", "rejected", "server", "protocol"]
ProgressCallback = Callable[[int, int], None]
Answer = TypeVar("Answer", bound=BaseModel)


class ServiceError(Exception):
    """A request to the keyword service failed; `message` is meant to be shown to a person as is."""

    def __init__(self, message: str, kind: ErrorKind, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status_code = status_code


@dataclass(frozen=True)
class ModelInfo:
    """The app's view of `GET /model_info` (`schemas.ModelInfo`): the fields its widgets need, flattened."""

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

    @classmethod
    def of(cls, served: ServedModelInfo, raw: dict[str, Any]) -> ModelInfo:
        decoding = served.decoding
        return cls(
            model=ModelRef(name=served.name, version=served.version, alias=served.alias),
            tag=served.tag,
            test_f1=served.test_f1,
            base_model=served.base_model,
            num_beams=decoding.num_beams,
            max_num_beams=decoding.max_num_beams,
            filter_ungrounded=decoding.filter_ungrounded,
            max_keywords=decoding.max_keywords,
            max_text_chars=served.limits["max_text_chars"],
            max_batch_texts=served.limits["max_batch_texts"],
            raw=raw,
        )


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


def configured_url() -> str:
    """The service this deployment of the app is configured for: KEYWORD_SERVICE_URL, else the default."""
    return normalize_url(os.environ.get("KEYWORD_SERVICE_URL", "").strip() or DEFAULT_URL)


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)


def auth_headers(base_url: str) -> dict[str, str]:
    """The bearer token (KEYWORD_API_TOKEN) for the configured service's origin only.

    The app's URL field is free text: a token sent to whatever was typed there could be collected by
    anyone who points the app at a server they control.
    """
    token = os.environ.get("KEYWORD_API_TOKEN", "").strip()
    if not token or _origin(normalize_url(base_url)) != _origin(configured_url()):
        return {}
    return {"Authorization": f"Bearer {token}"}


def _client(base_url: str, timeout_s: float) -> httpx.Client:
    timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
    url = normalize_url(base_url)
    return httpx.Client(base_url=url, timeout=timeout, headers=auth_headers(url), follow_redirects=False)


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


def _parse(schema: type[Answer], body: Any, url: str) -> Answer:
    """The service's answer read with the service's own response type; anything else is not the service."""
    try:
        return schema.model_validate(body)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        raise ServiceError(
            f"{url} answered an unexpected document ({where}: {problem['msg']}): is this the keyword service?",
            "protocol",
        ) from error


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
        return ModelInfo.of(_parse(ServedModelInfo, body, f"{_base(client)}/model_info"), body)


def extract(base_url: str, text: str, options: Options = Options(), timeout_s: float = DEFAULT_TIMEOUT_S) -> Extraction:
    """Keywords of one question, with the model that answered and the round-trip time."""
    if not text.strip():
        raise ServiceError("The question is empty: type a question first.", "input")
    started = time.perf_counter()
    with _client(base_url, timeout_s) as client:
        body = _request(client, "POST", "/extract", json={"text": text, **options.as_json()})
        answer = _parse(ExtractResponse, body, f"{_base(client)}/extract")
        return Extraction(answer.keywords, answer.model, time.perf_counter() - started)


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
                answer = _parse(ExtractBatchResponse, body, f"{_base(client)}/extract_batch")
            except ServiceError as error:
                raise ServiceError(f"{where}: {error.message}", error.kind) from error
            answers = answer.keywords
            if len(answers) != len(chunk):
                raise ServiceError(
                    f"{where}: the service answered {len(answers)} keyword lists for {len(chunk)} questions.",
                    "protocol",
                )
            answered_by = answer.model
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
        model = ModelRef(name="", version="", alias="")
    return BatchExtraction(results, model, time.perf_counter() - started)


def send_feedback(base_url: str, correction: FeedbackRequest, timeout_s: float = 30.0) -> FeedbackReceipt:
    """A person's correction to `POST /feedback`; a 422 (it breaks the labelling rules) says why in `message`."""
    with _client(base_url, timeout_s) as client:
        body = _request(client, "POST", "/feedback", json=correction.model_dump())
        return _parse(FeedbackReceipt, body, f"{_base(client)}/feedback")
