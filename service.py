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
at once as one call (`service_support.request_merging`; one HTTP hop per batch, not per request), and
BentoML's adaptive batching in the model service merges what arrives from several public calls and
splits calls larger than `KEYWORD_MAX_BATCH_SIZE`. How many questions each model call carried is the
Prometheus histogram `keyword_model_questions_per_call` on `/metrics`.

Which model: the Bento argument `model_tag` (pinned by `bentoml build`, see
`keyword_extractor.integrations.bento_models.build_bento`), else `KEYWORD_MODEL_TAG`, else
`keyword-extractor:latest` from the BentoML model store. Limits come from the environment
(`KEYWORD_MAX_TEXT_CHARS`, `KEYWORD_MAX_BATCH_TEXTS`, `KEYWORD_MAX_BATCH_SIZE`, `KEYWORD_MAX_LATENCY_MS`,
`KEYWORD_MERGE_WAIT_MS`, `KEYWORD_TIMEOUT_S`) and are read when the service starts, as are the CPU
settings of the model service (measured in benchmarks/README.md, "Serving"):

- `KEYWORD_NUM_BEAMS` (default: the model directory's `num_beams`): beam width when a request names none;
- `KEYWORD_MODEL_WORKERS` (default 1): processes holding the weights, each with its own batching queue;
- `KEYWORD_TORCH_THREADS` (default: cores / model workers / 2, at least 1): torch threads per worker;
- `KEYWORD_QUANTIZE` (`auto`, `int8` or `off`; default `auto`): row-wise int8 Linear layers on CPU
  (`keyword_extractor.model.int8_linear`: answers still independent of the batch). `auto` uses them only where
  the model directory allows them (training's validation F1 check, `keyword_extractor.training.cpu_precision`)
  and this CPU runs the model's layers faster in int8, timed when the model loads
  (`keyword_extractor.inference.serving_precision`); `int8` and `off` force. `GET /model_info` says what was
  chosen and why;
- `KEYWORD_GREEDY_LOOP` (1 or 0; default 1): greedy requests through `keyword_extractor.model.greedy` (the same
  answers as `generate`, faster); 0 always uses `generate`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict

import aiohttp
import bentoml
from bentoml.exceptions import ServiceUnavailable
from fastapi import FastAPI

from keyword_extractor.model.artifact import InferenceSettings
from service_support.middleware import RequestGuard
from service_support.request_merging import RequestMerger
from service_support.schemas import (
    Decoding,
    ExtractBatchRequest,
    ExtractBatchResponse,
    ExtractJob,
    ExtractRequest,
    ExtractResponse,
    ModelInfo,
    ModelRef,
    Options,
    Precision,
)
from service_support.settings import MAX_BEAMS, MAX_KEYWORDS, SETTINGS

log = logging.getLogger("bentoml.keyword_service")


def questions_per_call_histogram():  # -> prometheus_client.Histogram
    """Created in the worker: prometheus_client must be imported after BentoML set its multiprocess dir."""
    import prometheus_client

    return prometheus_client.Histogram(
        "keyword_model_questions_per_call",
        "Questions decoded per call of the model service (after both merging steps)",
        buckets=[2**i for i in range(SETTINGS.max_batch_size.bit_length())] + [SETTINGS.max_batch_size],
    )


@bentoml.service(
    workers=SETTINGS.model_workers,
    threads=1,
    traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": 512},
    # BentoML 1.4 recycles its client session to a dependency every 100 requests / 300 s by closing it,
    # which breaks the requests still in flight on it (500s under concurrency). A local socket needs no recycling.
    runner_connection={"max_requests": 2**31 - 1, "max_age": 1e9},
    # Internal calls: the public service already logs every request; a second access-log line per call
    # costs the model process CPU it shares with decoding.
    logging={"access": {"enabled": False}},
)
class KeywordModel:
    """Holds the weights; one batchable method that every public route ends in."""

    model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        os.environ.setdefault("RAYON_NUM_THREADS", str(SETTINGS.torch_threads))  # the tokenizer's thread pool
        import torch  # torch only in this process

        from keyword_extractor.inference.extractor import KeywordExtractor

        torch.set_num_threads(SETTINGS.torch_threads)
        self.extractor = KeywordExtractor(self.model.path, quantize=SETTINGS.quantize, greedy_loop=SETTINGS.greedy_loop)
        self.questions_per_call = questions_per_call_histogram()
        log.info(
            "loaded %s from %s on %s (%d torch threads, greedy decoding by %s); %s",
            self.model.tag,
            self.model.path,
            self.extractor.device,
            SETTINGS.torch_threads,
            "the greedy loop" if self.extractor.greedy else "generate()",
            self.extractor.precision.describe(),
        )

    @bentoml.api
    def precision(self) -> Precision:
        """The precision this worker chose when it loaded the model, and why (shown by /model_info)."""
        return Precision(**self.extractor.precision.as_dict())

    @bentoml.api(batchable=True, max_batch_size=SETTINGS.max_batch_size, max_latency_ms=SETTINGS.max_latency_ms)
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


info_app = FastAPI(title="keyword-extractor model info", docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(
    workers=1, traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": 256}, http={"host": SETTINGS.host}
)
@bentoml.asgi_app(info_app, path="/")
class KeywordService:
    """Public API: validation, defaults and the answer's shape; inference is `KeywordModel`'s job."""

    model = bentoml.models.BentoModel(SETTINGS.model_tag)
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
                num_beams=SETTINGS.num_beams or min(s.num_beams, MAX_BEAMS),
                max_num_beams=MAX_BEAMS,
                grounded_decoding=s.grounded_decoding,
                grounding=s.grounding,
                filter_ungrounded=s.filter_ungrounded,
                max_keywords=min(s.max_keywords, MAX_KEYWORDS),
                max_new_tokens=s.max_new_tokens,
                max_source_length=s.max_source_length,
                # what was asked; the first /model_info replaces it with what the model service chose
                quantize=SETTINGS.quantize,
            ),
            limits={"max_text_chars": SETTINGS.max_text_chars, "max_batch_texts": SETTINGS.max_batch_texts},
        )
        self.merger = RequestMerger(
            self._call_model,
            max_items=SETTINGS.max_batch_size,
            max_in_flight=SETTINGS.model_workers,
            max_wait_s=SETTINGS.merge_wait_ms / 1e3,
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
    async def model_info(self) -> ModelInfo:
        """Which model is served, how good it was on the test set, how it decodes and in which precision."""
        if self.info.precision is None:
            precision = await self._model_precision()
            decoding = self.info.decoding.model_copy(update={"quantize": precision.effective})
            self.info = self.info.model_copy(update={"precision": precision, "decoding": decoding})
        return self.info

    async def _model_precision(self) -> Precision:
        """Asked of the model service once: the precision is decided where the weights are loaded."""
        try:
            answer = await self.engine.to_async.precision()
        except aiohttp.ClientConnectionError as error:
            raise ServiceUnavailable("the model service is unreachable; retry later") from error
        return answer if isinstance(answer, Precision) else Precision.model_validate(answer)


KeywordService.add_asgi_middleware(RequestGuard)
