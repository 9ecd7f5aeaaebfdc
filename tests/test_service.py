"""The BentoML service for real: `bentoml serve` on 127.0.0.1, a temporary BENTOML_HOME, the tiny model.

One server per module (started once, killed with its process group at the end) answers every test
but the last; the last builds a Bento through the Prefect task and serves the Bento itself.

The briefly trained tiny model answers '?' to everything, which post-processing drops, so every
answer would be [] and "each answer belongs to its own question" could not fail. The served copy
therefore suppresses punctuation and space tokens in its generation_config.json (`talkative_model_dir`
in conftest.py): with grounded decoding it must then copy a piece of the question, different from
question to question.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text.keywords import is_grounded
from service_support.local_server import bentoml_env, import_model, start_bento, stop_bento
from tests.conftest import PROJECT_ROOT, TEST_TSV, prefect_env

pytestmark = pytest.mark.slow  # starts real servers; deselect with -m "not slow"

MAX_TEXT_CHARS, MAX_BATCH_TEXTS = 300, 32  # set through the environment: the limits are configurable
LABELS = {
    "registered_model": "keyword-extractor",
    "mlflow_version": "3",
    "mlflow_alias": "champion",
    "mlflow_run_id": "run-abc",
    "test_f1": "0.4321",
    "test_digest": "digest-xyz",
}
QUESTIONS = load_pairs(TEST_TSV)["query"].tolist()


@pytest.fixture(scope="module")
def reference(selected_model_dir) -> dict[str, list[str]]:
    """What the core package's KeywordExtractor answers for every test question: the service must agree.

    The served model has a span selector, so the Bento must serve both stages to agree.
    """
    from keyword_extractor.inference.extractor import KeywordExtractor

    extractor = KeywordExtractor(selected_model_dir)
    assert extractor.selector is not None
    return dict(zip(QUESTIONS, extractor.extract(QUESTIONS)))


@pytest.fixture(scope="module")
def server(selected_model_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("bentoml-home")
    env = bentoml_env(home)
    tag = import_model(selected_model_dir, env, LABELS)
    env.update(
        KEYWORD_MODEL_TAG=tag, KEYWORD_MAX_TEXT_CHARS=str(MAX_TEXT_CHARS), KEYWORD_MAX_BATCH_TEXTS=str(MAX_BATCH_TEXTS)
    )
    running = start_bento(".", env, home / "serve.log")  # the project dir: bentofile.yaml names the service
    running.tag = tag
    running.feedback_url = env["KEYWORD_FEEDBACK_URL"]
    yield running
    stop_bento(running)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


# --- happy paths -------------------------------------------------------------------------------------------

MODEL_REF = {"name": "keyword-extractor", "version": "3", "alias": "champion"}


def test_extract_answers_grounded_keywords_and_names_the_model(client, reference):
    question = QUESTIONS[0]
    response = client.post("/extract", json={"text": question})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"keywords": reference[question], "model": MODEL_REF}
    assert body["keywords"] and all(isinstance(k, str) and is_grounded(k, question) for k in body["keywords"])


def test_extract_options_are_applied(client):
    question = QUESTIONS[1]
    for options in ({"max_keywords": 1}, {"filter_ungrounded": False}, {"num_beams": 2}, {"num_beams": 4}):
        response = client.post("/extract", json={"text": question, **options})
        assert response.status_code == 200, (options, response.text)
        keywords = response.json()["keywords"]
        assert isinstance(keywords, list) and all(isinstance(k, str) for k in keywords)
        assert len(keywords) <= options.get("max_keywords", 10)


def test_extract_batch_answers_in_input_order(client, reference):
    texts = QUESTIONS[:MAX_BATCH_TEXTS]
    response = client.post("/extract_batch", json={"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL_REF
    assert body["keywords"] == [reference[text] for text in texts]
    assert client.post("/extract_batch", json={"texts": []}).json()["keywords"] == []


def test_model_info_describes_the_imported_model(client, server, selected_model_dir):
    response = client.get("/model_info")
    assert response.status_code == 200, response.text
    info = response.json()
    settings_file = json.loads((selected_model_dir / "keyword_extractor.json").read_text())
    assert {k: info[k] for k in ("name", "version", "alias")} == MODEL_REF
    assert info["tag"] == server.tag and info["test_f1"] == 0.4321
    assert info["test_digest"] == "digest-xyz" and info["mlflow_run_id"] == "run-abc"
    assert info["base_model"] == settings_file["base_model"] == "tiny"
    decoding = info["decoding"]
    for key in ("grounding", "filter_ungrounded", "max_new_tokens", "max_source_length"):
        assert decoding[key] == settings_file[key], key
    # the precision the model service chose when it loaded the weights, on this CPU, and why
    precision = info["precision"]
    assert precision["requested"] == "auto" and precision["int8_allowed"] == settings_file["int8_allowed"]
    assert decoding["quantize"] == precision["effective"] in ("off", "int8") and precision["reason"]
    if settings_file["int8_allowed"]:
        assert set(precision["calibration"]["speedups"]) == {"1", str(settings_file["batch_size"])}
    else:
        assert precision["effective"] == "off" and precision["calibration"] is None
    assert decoding["grounded_decoding"] == (settings_file["grounding"] != "off")
    assert decoding["num_beams"] == min(settings_file["num_beams"], 4) and decoding["max_num_beams"] == 4
    assert info["limits"] == {"max_text_chars": MAX_TEXT_CHARS, "max_batch_texts": MAX_BATCH_TEXTS}


def test_bentoml_endpoints_remain(client):
    for path in ("/healthz", "/livez", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path
    paths = client.get("/docs.json").json()["paths"]
    assert {"/extract", "/extract_batch", "/model_info", "/feedback"} <= set(paths)
    assert "extract_many" not in json.dumps(paths)  # the batching method stays internal


def readme_service_paths() -> set[tuple[str, str]]:
    """(method, path) of every route README's serving section names in backticks."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Serving (BentoML)", 1)[1].split("\n## ", 1)[0]
    return {(method or "GET", path) for method, path in re.findall(r"`(?:(GET|POST) )?(/[a-z_.]*)`", section)}


def test_every_route_the_readme_names_answers(client):
    """README's routes, as written: a renamed or moved route (like a `/docs` that was a 404) fails here."""
    named = readme_service_paths()
    assert {("POST", "/extract"), ("GET", "/docs.json"), ("GET", "/")} <= named, named
    bodies = {"/extract": {"text": QUESTIONS[0]}, "/extract_batch": {"texts": QUESTIONS[:2]}, "/feedback": CORRECTION}
    for method, path in sorted(named):
        answer = client.request(method, path, json=bodies.get(path)) if method == "POST" else client.get(path)
        assert answer.status_code == 200, (method, path, answer.status_code, answer.text[:300])


# --- feedback ------------------------------------------------------------------------------------------------

CORRECTION = {
    "query": "여행자 휴대품 면세한도는 얼마인가요?",
    "model_keywords": ["여행자", "면세한도"],
    "model_version": "3",
    "keywords": ["여행자 휴대품", "면세한도"],
    "comment": "여행자 휴대품 is one term",
}


def test_a_correction_is_stored_once_for_review(client, server):
    from keyword_extractor.feedback.store import FeedbackStore

    correction = {**CORRECTION, "keywords": ["여행자 휴대품"]}  # sent by no other test
    first = client.post("/feedback", json=correction)
    assert first.status_code == 200, first.text
    receipt = first.json()
    assert receipt["created"] is True and receipt["status"] == "pending"
    again = client.post("/feedback", json=correction).json()
    assert (again["id"], again["created"]) == (receipt["id"], False)
    stored = {s.id: s for s in FeedbackStore(server.feedback_url).corrections()}
    assert stored[receipt["id"]].correction.keywords == ["여행자 휴대품"]
    assert stored[receipt["id"]].status == "pending"


@pytest.mark.parametrize(
    ("keywords", "reason"),
    [(["관세청"], "'관세청' does not occur in the question"), (["면세한도", "면세한도"], "more than once: 면세한도")],
)
def test_a_correction_that_breaks_the_labelling_rules_is_a_422_with_the_reason(client, keywords, reason):
    answer = client.post("/feedback", json={**CORRECTION, "keywords": keywords})
    assert answer.status_code == 422 and reason in answer.json()["error"], answer.text


def test_a_malformed_correction_is_a_400(client):
    answer = client.post("/feedback", json={**CORRECTION, "keywords": "면세한도"})
    assert answer.status_code == 400 and "keywords: Input should be a valid array" in answer.json()["error"]


# --- bad input: 4xx with a message, never 5xx ---------------------------------------------------------------

BAD_REQUESTS = [
    ("/extract", {}, "text: Field required"),
    ("/extract", {"text": 5}, "text: Input should be a valid string"),
    ("/extract", {"text": ""}, "text: String should have at least 1 character"),
    ("/extract", {"text": " \t\n\u3000"}, "text: text is blank"),
    ("/extract", {"text": "\u200b\u200c\u200d"}, "text: text is blank"),  # zero-width only: invisible, blank
    ("/extract", {"text": "가" * (MAX_TEXT_CHARS + 1)}, f"text: String should have at most {MAX_TEXT_CHARS} char"),
    ("/extract", {"text": "관세", "max_keywords": 0}, "max_keywords: Input should be greater than or equal to 1"),
    ("/extract", {"text": "관세", "max_keywords": 11}, "max_keywords: Input should be less than or equal to 10"),
    ("/extract", {"text": "관세", "max_keywords": "3"}, "max_keywords: Input should be a valid integer"),
    ("/extract", {"text": "관세", "max_keywords": None}, "max_keywords: null is not allowed"),
    ("/extract", {"text": "관세", "num_beams": 5}, "num_beams: Input should be less than or equal to 4"),
    ("/extract", {"text": "관세", "filter_ungrounded": "yes"}, "filter_ungrounded: Input should be a valid boolean"),
    ("/extract", {"text": "관세", "txt": "typo"}, "txt: Extra inputs are not permitted"),
    ("/extract", {"texts": ["관세"]}, "text: Field required"),
    ("/extract", "not json", "Invalid JSON"),
    ("/extract", "[1, 2]", "Input should be an object"),
    ("/extract", '"관세"', "Input should be an object"),
    ("/extract_batch", {}, "texts: Field required"),
    ("/extract_batch", {"texts": "관세"}, "texts: Input should be a valid array"),
    ("/extract_batch", {"texts": ["관세", 5]}, "texts.1: Input should be a valid string"),
    ("/extract_batch", {"texts": ["관세", "  "]}, "texts.1: text is blank"),
    (
        "/extract_batch",
        {"texts": ["관세"] * (MAX_BATCH_TEXTS + 1)},
        f"texts: List should have at most {MAX_BATCH_TEXTS} ",
    ),
]


@pytest.mark.parametrize(("route", "body", "message"), BAD_REQUESTS, ids=[m for _, _, m in BAD_REQUESTS])
def test_bad_input_is_a_400_with_a_readable_message(client, route, body, message):
    if isinstance(body, str):
        response = client.post(route, content=body.encode(), headers={"Content-Type": "application/json"})
    else:
        response = client.post(route, json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"].startswith("invalid request: ") and message in error["error"], error
    assert all({"loc", "msg", "type"} <= set(e) for e in error["errors"])


def test_bodies_that_are_not_json_are_a_415(client):
    for request in (
        {"files": {"text": ("q.txt", b"abc")}},  # multipart (BentoML alone answers 500 to a malformed one)
        {"data": {"text": "abc"}},  # form-urlencoded
        {"content": b"text=abc", "headers": {"Content-Type": "multipart/form-data"}},  # no boundary
        {"content": b"\x80\x03", "headers": {"Content-Type": "application/vnd.bentoml+pickle"}},
    ):
        response = client.post("/extract", **request)
        assert response.status_code == 415, (request, response.text)
        assert "send JSON" in response.json()["error"]


def test_wrong_methods_and_paths_are_4xx(client):
    for method, path in (("GET", "/extract"), ("PUT", "/extract_batch"), ("GET", "/feedback")):
        wrong = client.request(method, path)  # it was a plain-text "Method Not Allowed"
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST", (method, path)
        assert wrong.json() == {"error": f"method {method} not allowed on {path}: use POST with a JSON body"}
    assert client.post("/model_info").status_code == 405
    assert client.post("/extract_many", json={"jobs": []}).status_code == 404


# --- concurrency: merged model calls, each answer to its own question ------------------------------------------


def questions_per_call(client: httpx.Client) -> dict[str, float]:
    """The model service's histogram of questions per model call: cumulative buckets, _count and _sum."""
    found: dict[str, float] = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("keyword_model_questions_per_call_bucket"):
            bucket = re.search(r'le="([^"]+)"', line).group(1)
            found[bucket] = found.get(bucket, 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith(("keyword_model_questions_per_call_count", "keyword_model_questions_per_call_sum")):
            key = line.split(" ", 1)[0].split("{", 1)[0].rsplit("_", 1)[1]
            found[key] = found.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def test_concurrent_single_requests_share_model_calls_and_each_gets_its_own_answer(client, reference):
    questions = QUESTIONS[:200]
    assert len(set(questions)) == 200
    before = questions_per_call(client)

    def ask(question: str) -> tuple[str, httpx.Response]:
        return question, client.post("/extract", json={"text": question})

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, questions))
    failed = [(q, r.status_code, r.text) for q, r in answers if r.status_code != 200]
    assert not failed, failed[:3]
    for question, response in answers:
        keywords = response.json()["keywords"]
        assert keywords == reference[question], question
        assert all(is_grounded(k, question) for k in keywords), (question, keywords)
    after = questions_per_call(client)
    calls = after["count"] - before.get("count", 0)
    decoded = after["sum"] - before.get("sum", 0)
    alone = after["1.0"] - before.get("1.0", 0)
    assert decoded == 200, f"{decoded} questions reached the model for 200 requests"
    assert calls <= 100 and alone < calls / 2, f"too little merging: {calls} model calls, {alone} of one question"


# --- schemathesis over the OpenAPI page ---------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def hypothesis_home(tmp_path_factory):
    """Hypothesis' caches go to a temporary directory, not `.hypothesis/` in the working tree."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture(scope="module")
def api_schema(server):
    """The served OpenAPI document, with one BentoML 1.4 gap closed: it does not mark request bodies as
    required, though every POST route needs one (an empty body is read as `{}` and refused)."""
    document = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["requestBody"]["required"] = True
    return schemathesis.openapi.from_dict(document)


# Schemathesis' own pytest integration (`schemathesis.pytest.from_fixture`) breaks on pytest 9.2
# (it sets `Function._nodeid`), so each operation's strategy is driven with Hypothesis directly.
OPERATIONS = [
    ("POST", "/extract", GenerationMode.POSITIVE),
    ("POST", "/extract", GenerationMode.NEGATIVE),
    ("POST", "/extract_batch", GenerationMode.POSITIVE),
    ("POST", "/extract_batch", GenerationMode.NEGATIVE),
    ("GET", "/model_info", GenerationMode.POSITIVE),
]


@pytest.mark.parametrize(("method", "path", "mode"), OPERATIONS, ids=[f"{m} {p} {g.value}" for m, p, g in OPERATIONS])
def test_openapi_schema_holds_and_nothing_answers_5xx(api_schema, server, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        response = case.call(base_url=server.url, timeout=120)
        assert response.status_code < 500, f"{method} {path} -> {response.status_code}: {response.text[:500]}"
        case.validate_response(response)  # schemathesis' default checks: status codes, schemas, content types

    check()


# --- the build path: MLflow champion -> Prefect task -> Bento -> `bentoml serve <bento>` ----------------------

BUILD_SCRIPT = textwrap.dedent("""
    import json, sys
    from prefect import flow
    from prefect.client.orchestration import get_client
    from keyword_extractor.integrations import registry, tracking
    from tasks.bento import build_bento

    tracking.configure()
    run_id = tracking.start_pipeline_run("bento", {"pipeline.run_name": "bento"})
    registration = registry.register(run_id, sys.argv[1], 0.4321, "digest-xyz", baseline_f1=0.2)

    @flow
    def package():
        skipped = build_bento(promoted=False)
        built = build_bento(promoted=registration.promoted)
        again = build_bento(promoted=True)
        return skipped, built, again

    skipped, built, again = package()
    with get_client(sync_client=True) as client:
        artifacts = [a.data for a in client.read_artifacts() if a.key == "bento"]
    print("OUTCOME " + json.dumps({"skipped": skipped, "built": built, "again": again, "run_id": run_id,
                                   "artifacts": artifacts}))
""")


def test_prefect_task_builds_a_bento_that_serves_the_pinned_champion(talkative_model_dir, tiny_model_dir, tmp_path):
    home = tmp_path / "bentoml-home"
    (tmp_path / "build.py").write_text(BUILD_SCRIPT, encoding="utf-8")
    env = prefect_env(tmp_path / "prefect-home", MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    env = {k: v for k, v in env.items() if not k.startswith(("BENTOML_", "KEYWORD_"))} | {"BENTOML_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "build.py"), str(talkative_model_dir)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("OUTCOME ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-4000:]
    outcome = json.loads(lines[-1].removeprefix("OUTCOME "))
    assert outcome["skipped"] is None  # not promoted and no Bento yet: nothing built
    bento_tag = outcome["built"]
    assert bento_tag.startswith("keyword-extractor:") and outcome["again"].startswith("keyword-extractor:")
    published = outcome["artifacts"]
    assert len(published) == 3 and sum(text.startswith("## No new Bento") for text in published) == 1
    for tag in (bento_tag, outcome["again"]):
        assert any(f"bentoml serve {tag}" in text for text in published), tag
    models = list((home / "models" / "keyword-extractor").iterdir())
    assert len([m for m in models if m.is_dir()]) == 1  # the same registered version is imported once

    # A newer model in the store must not change what the Bento serves: its model tag is pinned.
    newer = import_model(tiny_model_dir, bentoml_env(home), {"mlflow_version": "99"})
    running = start_bento(bento_tag, bentoml_env(home), tmp_path / "bento.log", cwd=tmp_path)
    try:
        info = httpx.get(f"{running.url}/model_info", timeout=30).json()
        assert info["tag"] != newer and (info["version"], info["alias"]) == ("1", "champion")
        assert info["test_f1"] == 0.4321 and info["mlflow_run_id"] == outcome["run_id"]
        assert info["limits"] == {"max_text_chars": 1000, "max_batch_texts": 256}  # the defaults
        described = httpx.get(f"{running.url}/docs.json", timeout=30).json()["info"]["description"]
        served = f"This Bento serves {info['tag']} (base model tiny; keyword-extractor v1 in MLflow; test F1 0.4321)"
        assert served in described, described  # the OpenAPI page names the pinned model, not a newer one
        question = QUESTIONS[0]
        answer = httpx.post(f"{running.url}/extract", json={"text": question}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["keywords"] and all(is_grounded(k, question) for k in answer.json()["keywords"])
    finally:
        stop_bento(running)
