"""The keyword service: Korean question(s) in, knowledge-graph keywords out, over HTTP (BentoML).

    bentoml serve                                   # from the project dir (reads bentofile.yaml)
    bentoml serve keyword-extractor:latest          # a built Bento

Two BentoML services, one process each:

- `KeywordService` (public, port 3000): validates requests, answers `/extract`, `/extract_batch`
  and `GET /model_info`; it never touches the weights.
- `KeywordModel` (internal, reached over a local socket through `bentoml.depends`): loads the
  model directory once with `KeywordExtractor` and offers ONE batchable method, so that one
  `generate` call serves many questions. Keeping it a separate service is what lets every public
  route go through that one batching queue without exposing the batchable route itself.

Concurrent requests are merged twice: the public service sends the questions of all requests pending
at once as one call (`keyword_extractor.request_merging`; one HTTP hop per batch, not per request), and
BentoML's adaptive batching in the model service merges what arrives from several public calls and
splits calls larger than `KEYWORD_MAX_BATCH_SIZE`. How many questions each model call carried is the
Prometheus histogram `keyword_model_questions_per_call` on `/metrics`.

Which model: the Bento argument `model_tag` (pinned by `bentoml build`, see
`keyword_extractor.bento_models.build_bento`), else `KEYWORD_MODEL_TAG`, else
`keyword-extractor:latest` from the BentoML model store. Limits come from the environment
(`KEYWORD_MAX_TEXT_CHARS`, `KEYWORD_MAX_BATCH_TEXTS`, `KEYWORD_MAX_BATCH_SIZE`, `KEYWORD_MAX_LATENCY_MS`,
`KEYWORD_MERGE_WAIT_MS`, `KEYWORD_TIMEOUT_S`) and are read when the service starts, as are the CPU
settings of the model service (measured in benchmarks/README.md, "Serving"):

- `KEYWORD_NUM_BEAMS` (default: the model directory's `num_beams`): beam width when a request names none;
- `KEYWORD_MODEL_WORKERS` (default 1): processes holding the weights, each with its own batching queue;
- `KEYWORD_TORCH_THREADS` (default: cores / model workers / 2, at least 1): torch threads per worker;
- `KEYWORD_QUANTIZE` (`int8` or `off`; default: the model directory's setting, which training sets to
  int8 only when the validation F1 allows it, see `keyword_extractor.cpu_precision`): dynamic int8
  Linear layers on CPU;
- `KEYWORD_GREEDY_LOOP` (1 or 0; default 1): greedy requests through `keyword_extractor.greedy` (the same
  answers as `generate`, faster); 0 always uses `generate`.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import time
from collections import defaultdict
from typing import Annotated

import aiohttp
import bentoml
from bentoml.exceptions import ServiceUnavailable
from fastapi import FastAPI
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyword_extractor.artifact import InferenceSettings
from keyword_extractor.request_merging import RequestMerger

log = logging.getLogger("bentoml.keyword_service")


def _env_int(name: str, default: int, low: int, high: int) -> int:
    """A bounded integer setting from the environment; a bad value fails at start, not per request."""
    raw = os.environ.get(name, "").strip()
    value = int(raw) if raw else default
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high}")
    return value


MODEL_TAG: str = (
    getattr(bentoml.use_arguments(), "model_tag", None)
    or os.environ.get("KEYWORD_MODEL_TAG")
    or "keyword-extractor:latest"
)
MAX_TEXT_CHARS = _env_int("KEYWORD_MAX_TEXT_CHARS", 1000, 1, 100_000)
MAX_BATCH_TEXTS = _env_int("KEYWORD_MAX_BATCH_TEXTS", 256, 1, 100_000)
MAX_BATCH_SIZE = _env_int("KEYWORD_MAX_BATCH_SIZE", 32, 2, 1024)  # questions per generate() call
# Queueing budget before the batcher sheds load with 503. Keep it large: until BentoML has timed a few
# batches it estimates min(2 s, budget/15) per queued request, so with a budget under 30 s a cold start
# under a burst of ~15 concurrent requests already answers 503; 60 s tolerates ~29.
MAX_LATENCY_MS = _env_int("KEYWORD_MAX_LATENCY_MS", 60_000, 100, 600_000)
# How long a merged call waits for as many questions as the previous call carried (see request_merging).
MERGE_WAIT_MS = _env_int("KEYWORD_MERGE_WAIT_MS", 20, 0, 10_000)
TIMEOUT_S = _env_int("KEYWORD_TIMEOUT_S", 60, 1, 3600)
MAX_KEYWORDS, MAX_BEAMS = 10, 4
# Where `bentoml serve` listens unless --host says otherwise: loopback, so that a model server is never
# exposed by accident. KEYWORD_HOST=0.0.0.0 (or a container's `-e KEYWORD_HOST=0.0.0.0`) exposes it.
HOST = str(ipaddress.ip_address(os.environ.get("KEYWORD_HOST", "127.0.0.1").strip()))
# KEYWORD_API_TOKEN set: every route but the health and metrics probes needs `Authorization: Bearer <token>`.
API_TOKEN = os.environ.get("KEYWORD_API_TOKEN", "").strip()
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
# Request bodies above this are refused with 413 before they are read (a batch of 256 questions of 1000
# characters is about 800 KB of JSON).
MAX_BODY_BYTES = _env_int("KEYWORD_MAX_BODY_BYTES", 2**20, 1024, 2**30)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _quantize_setting() -> str | None:
    """KEYWORD_QUANTIZE: None (unset: the model directory decides), "" (off) or "int8"."""
    raw = os.environ.get("KEYWORD_QUANTIZE", "").strip().lower()
    if not raw:
        return None
    if raw in ("off", "none", "0", "fp32"):
        return ""
    if raw != "int8":
        raise ValueError(f"KEYWORD_QUANTIZE={raw} is not one of int8, off")
    return raw


NUM_BEAMS = _env_int("KEYWORD_NUM_BEAMS", 0, 0, MAX_BEAMS)  # default beam width; 0: the model directory's
MODEL_WORKERS = _env_int("KEYWORD_MODEL_WORKERS", 1, 1, 64)
# Half the cores per worker by default: the public service, the batching loop and the clients of a
# loaded server need CPU too, and torch threads that outnumber the idle cores spin-wait on each other
# (decoder steps measured many times slower with 2 threads on 2 busy cores than with 1).
TORCH_THREADS = _env_int("KEYWORD_TORCH_THREADS", max(1, _cores() // MODEL_WORKERS // 2), 1, 1024)
QUANTIZE = _quantize_setting()
GREEDY_LOOP = bool(_env_int("KEYWORD_GREEDY_LOOP", 1, 0, 1))


# "Not blank" spelled out once, for the validator and for the OpenAPI pattern alike: Python's `str.strip`
# and JSON Schema's `\S` disagree on a few characters (U+0085, U+001C..U+001F, U+FEFF).
NOT_BLANK = r"[^\t\n\v\f\r \u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
_NOT_BLANK = re.compile(NOT_BLANK)


def _has_text(text: str) -> str:
    if not _NOT_BLANK.search(text):
        raise ValueError("text is blank: it must contain at least one non-space character")
    return text


Question = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description=f"a Korean question, 1..{MAX_TEXT_CHARS} characters, not only spaces",
        json_schema_extra={"pattern": NOT_BLANK},
    ),
    AfterValidator(_has_text),
]


class Options(BaseModel):
    """Per-request options; a field left out means the model's own default (bounded by the server)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_keywords: int | None = Field(None, ge=1, le=MAX_KEYWORDS, description="cap on keywords per question")
    filter_ungrounded: bool | None = Field(None, description="drop keywords that do not occur in the question")
    num_beams: int | None = Field(None, ge=1, le=MAX_BEAMS, description="beam width (1 = greedy, fastest)")

    @field_validator("max_keywords", "filter_ungrounded", "num_beams", mode="before")
    @classmethod
    def _no_null(cls, value: object) -> object:
        # BentoML's OpenAPI page shows these as plain integer/boolean, so an explicit null is refused too.
        if value is None:
            raise ValueError("null is not allowed: give a value or leave the field out")
        return value


class ExtractRequest(Options):
    model_config = ConfigDict(
        title="ExtractRequest", json_schema_extra={"example": {"text": "여행자 휴대품 면세한도는 얼마인가요?"}}
    )

    text: Question


class ExtractBatchRequest(Options):
    model_config = ConfigDict(
        title="ExtractBatchRequest",
        json_schema_extra={"example": {"texts": ["여행자 휴대품 면세한도는 얼마인가요?", "관세 체납하면 어떻게 돼?"]}},
    )

    texts: list[Question] = Field(max_length=MAX_BATCH_TEXTS, description=f"at most {MAX_BATCH_TEXTS} questions")


class ModelRef(BaseModel):
    """Which model answered: the registered name, version and alias it was imported under."""

    name: str
    version: str
    alias: str


class ExtractResponse(BaseModel):
    keywords: list[str]
    model: ModelRef


class ExtractBatchResponse(BaseModel):
    keywords: list[list[str]] = Field(description="one list per question, in input order")
    model: ModelRef


class Decoding(BaseModel):
    num_beams: int
    max_num_beams: int
    grounded_decoding: bool
    grounding: str = Field(
        description='"morphemes": keywords are whole spans of Kiwi words of the question; "substrings": any '
        'substring of it; "off": unconstrained'
    )
    filter_ungrounded: bool
    max_keywords: int
    max_new_tokens: int
    max_source_length: int
    quantize: str = Field(description='"int8" or "" (fp32): the precision of the weights when served on CPU')


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    tag: str
    test_f1: float | None
    test_digest: str
    mlflow_run_id: str
    base_model: str
    decoding: Decoding
    limits: dict[str, int]


class ExtractJob(BaseModel):
    """One question with fully resolved options: what the model service batches."""

    text: str
    num_beams: int
    max_keywords: int
    filter_ungrounded: bool


def questions_per_call_histogram():  # -> prometheus_client.Histogram
    """Created in the worker: prometheus_client must be imported after BentoML set its multiprocess dir."""
    import prometheus_client

    return prometheus_client.Histogram(
        "keyword_model_questions_per_call",
        "Questions decoded per call of the model service (after both merging steps)",
        buckets=[2**i for i in range(MAX_BATCH_SIZE.bit_length())] + [MAX_BATCH_SIZE],
    )


@bentoml.service(
    workers=MODEL_WORKERS,
    threads=1,
    traffic={"timeout": TIMEOUT_S, "max_concurrency": 512},
    # BentoML 1.4 recycles its client session to a dependency every 100 requests / 300 s by closing it,
    # which breaks the requests still in flight on it (500s under concurrency). A local socket needs no recycling.
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9},
    # Internal calls: the public service already logs every request; a second access-log line per call
    # costs the model process CPU it shares with decoding.
    logging={"access": {"enabled": False}},
)
class KeywordModel:
    """Holds the weights; one batchable method that every public route ends in."""

    model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        os.environ.setdefault("RAYON_NUM_THREADS", str(TORCH_THREADS))  # the tokenizer's thread pool
        import torch  # torch only in this process

        from keyword_extractor.inference import KeywordExtractor

        torch.set_num_threads(TORCH_THREADS)
        self.extractor = KeywordExtractor(self.model.path, quantize=QUANTIZE, greedy_loop=GREEDY_LOOP)
        self.questions_per_call = questions_per_call_histogram()
        log.info(
            "loaded %s from %s on %s (%d torch threads, quantize=%s, greedy decoding by %s)",
            self.model.tag,
            self.model.path,
            self.extractor.device,
            TORCH_THREADS,
            self.extractor.quantize or "off",
            "the greedy loop" if self.extractor.greedy else "generate()",
        )

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def extract_many(self, jobs: list[ExtractJob]) -> list[list[str]]:
        """Keywords per job, in order; jobs with the same options share one `extract` call."""
        started = time.perf_counter()
        groups: dict[tuple[int, int, bool], list[int]] = defaultdict(list)
        for index, job in enumerate(jobs):
            groups[(job.num_beams, job.max_keywords, job.filter_ungrounded)].append(index)
        self.questions_per_call.observe(len(jobs))
        results: list[list[str]] = [[] for _ in jobs]
        for (num_beams, max_keywords, filter_ungrounded), indices in groups.items():
            keywords = self.extractor.extract(
                [jobs[i].text for i in indices],
                num_beams=num_beams,
                max_keywords=max_keywords,
                filter_ungrounded=filter_ungrounded,
            )
            for index, found in zip(indices, keywords):
                results[index] = found
        elapsed_ms = 1e3 * (time.perf_counter() - started)
        log.debug("batch of %d questions (%d option groups) in %.1f ms", len(jobs), len(groups), elapsed_ms)
        return results


def readable_errors(detail: list[dict]) -> str:
    """'text: String should have at least 1 character; num_beams: ...' from pydantic's error list."""
    parts = []
    for error in detail:
        where = ".".join(str(part) for part in error.get("loc", ())) or "body"
        parts.append(f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _authorized(header: bytes) -> bool:
    """Whether an Authorization header carries the API token (compared in constant time)."""
    scheme, _, token = header.decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), API_TOKEN.encode())


async def _buffered_body(receive: Receive, limit: int) -> list[Message] | None:
    """A body sent without Content-Length, read up to `limit` bytes; None as soon as it is longer."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body"):
            return messages


class RequestGuard:
    """ASGI middleware: the API token, the body size limit, JSON bodies only, readable validation errors.

    - With KEYWORD_API_TOKEN set, a request to any route but the health and metrics probes without the
      token is answered 401 before anything else happens.
    - A body over KEYWORD_MAX_BODY_BYTES is answered 413 without being read: by its Content-Length, or,
      for a chunked body, as soon as the bytes received pass the limit.

    - BentoML parses form and multipart bodies itself and answers a malformed one with 500 (it turns
      Starlette's 400 into 500): a body that is not JSON is refused here with 415.
    - BentoML's 400 says only "1 validation error for ExtractRequest" and puts pydantic's list under
      `detail`, while its OpenAPI page documents `detail` as a string. The 400 is rewritten to
      {"error": "invalid request: text: String should have at least 1 character", "errors": [...]}.
    """

    ACCEPTED = (b"", b"application/json")

    def __init__(self, app: ASGIApp, paths: tuple[str, ...] = ("/extract", "/extract_batch")) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if API_TOKEN and scope["path"] not in OPEN_PATHS and not _authorized(headers.get(b"authorization", b"")):
            error = "missing or wrong API token: send 'Authorization: Bearer <KEYWORD_API_TOKEN>'"
            response = JSONResponse({"error": error}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        too_large = JSONResponse(
            {"error": f"request body larger than {MAX_BODY_BYTES:,} bytes (KEYWORD_MAX_BODY_BYTES): send fewer texts"},
            status_code=413,
        )
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > MAX_BODY_BYTES):
            await too_large(scope, receive, send)
            return
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            messages = await _buffered_body(receive, MAX_BODY_BYTES)
            if messages is None:
                await too_large(scope, receive, send)
                return
            receive = _replay(messages, receive)
        if scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type not in self.ACCEPTED:
            message = f"unsupported Content-Type {content_type.decode('latin-1')!r}: send JSON (application/json)"
            await JSONResponse({"error": message}, status_code=415)(scope, receive, send)
            return
        held: dict[str, Message] = {}
        chunks: list[bytes] = []

        async def send_readable(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                held["start"] = message  # hold the 400 until its body is known
                return
            if "start" not in held or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            await send_error(b"".join(chunks))

        async def send_error(body: bytes) -> None:
            try:
                detail = json.loads(body).get("detail")
            except (ValueError, AttributeError):
                detail = None
            if isinstance(detail, list):
                errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in detail if isinstance(e, dict)]
                body = json.dumps({"error": f"invalid request: {readable_errors(errors)}", "errors": errors}).encode()
            headers = [(k, v) for k, v in held["start"]["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**held["start"], "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, send_readable)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the buffered messages first, then whatever comes (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


info_app = FastAPI(title="keyword-extractor model info", docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(workers=1, traffic={"timeout": TIMEOUT_S, "max_concurrency": 256}, http={"host": HOST})
@bentoml.asgi_app(info_app, path="/")
class KeywordService:
    """Public API: validation, defaults and the answer's shape; inference is `KeywordModel`'s job."""

    model = bentoml.models.BentoModel(MODEL_TAG)
    engine = bentoml.depends(KeywordModel)

    def __init__(self) -> None:
        stored = self.model  # labels and settings only: the weights are loaded by KeywordModel
        labels = stored.info.labels
        self.settings = InferenceSettings.load(stored.path)
        self.ref = ModelRef(
            name=labels.get("registered_model") or stored.tag.name,
            version=labels.get("mlflow_version") or str(stored.tag.version),
            alias=labels.get("mlflow_alias", ""),
        )
        s = self.settings
        f1 = labels.get("test_f1", "")
        self.info = ModelInfo(
            **self.ref.model_dump(),
            tag=str(stored.tag),
            test_f1=float(f1) if f1 else None,
            test_digest=labels.get("test_digest", ""),
            mlflow_run_id=labels.get("mlflow_run_id", ""),
            base_model=s.base_model or str(stored.info.metadata.get("base_model", "")),
            decoding=Decoding(
                num_beams=NUM_BEAMS or min(s.num_beams, MAX_BEAMS),
                max_num_beams=MAX_BEAMS,
                grounded_decoding=s.grounded_decoding,
                grounding=s.grounding,
                filter_ungrounded=s.filter_ungrounded,
                max_keywords=min(s.max_keywords, MAX_KEYWORDS),
                max_new_tokens=s.max_new_tokens,
                max_source_length=s.max_source_length,
                quantize=s.quantize if QUANTIZE is None else QUANTIZE,
            ),
            limits={"max_text_chars": MAX_TEXT_CHARS, "max_batch_texts": MAX_BATCH_TEXTS},
        )
        self.merger = RequestMerger(
            self._call_model, max_items=MAX_BATCH_SIZE, max_in_flight=MODEL_WORKERS, max_wait_s=MERGE_WAIT_MS / 1e3
        )

    def _jobs(self, texts: list[str], options: Options) -> list[ExtractJob]:
        d = self.info.decoding
        keep_grounded = d.filter_ungrounded if options.filter_ungrounded is None else options.filter_ungrounded
        return [
            ExtractJob(
                text=text,
                num_beams=options.num_beams or d.num_beams,
                max_keywords=options.max_keywords or d.max_keywords,
                filter_ungrounded=keep_grounded,
            )
            for text in texts
        ]

    async def _extract(self, texts: list[str], options: Options) -> list[list[str]]:
        """The request's questions join the next merged call into the model service."""
        return await self.merger(self._jobs(texts, options))

    async def _call_model(self, jobs: list[ExtractJob]) -> list[list[str]]:
        """One call into the batching queue; a dropped connection is retried once (the call is pure), then 503."""
        try:
            return await self.engine.to_async.extract_many(jobs)
        except aiohttp.ClientConnectionError:
            log.warning("connection to KeywordModel dropped; retrying once", exc_info=True)
        try:
            return await self.engine.to_async.extract_many(jobs)
        except aiohttp.ClientConnectionError as error:
            raise ServiceUnavailable("the model service is unreachable; retry later") from error

    @bentoml.api(route="/extract")
    async def extract(self, request: ExtractRequest, /) -> ExtractResponse:
        """Keywords of one question (concurrent requests are batched together)."""
        keywords = await self._extract([request.text], request)
        return ExtractResponse(keywords=keywords[0], model=self.ref)

    @bentoml.api(route="/extract_batch")
    async def extract_batch(self, request: ExtractBatchRequest, /) -> ExtractBatchResponse:
        """Keywords of many questions, in input order."""
        return ExtractBatchResponse(keywords=await self._extract(request.texts, request), model=self.ref)

    @info_app.get("/model_info", response_model=ModelInfo, tags=["Service APIs"])
    def model_info(self) -> ModelInfo:
        """Which model is served, how good it was on the test set, and how it decodes."""
        return self.info


KeywordService.add_asgi_middleware(RequestGuard)
