"""Serving benchmark: the Bento against the original serving approach, same model, same machine, one run.

    python -m benchmarks.serve_bench --model-dir DIR [--variant NAME:KEY=VALUE,...] [--json out.json]
    bentoml serve keyword-extractor:latest --port 3000 &        # or: a Bento that is already running
    python -m benchmarks.serve_bench --url http://127.0.0.1:3000 [--model-dir DIR] [--json out.json]

Without `--url` the script serves `--model-dir` itself (`benchmarks.bento_server`: a temporary
BENTOML_HOME, `bentoml serve` on 127.0.0.1), once per `--variant` (environment overrides such as
`workers2:KEYWORD_MODEL_WORKERS=2`; default: one variant, `bento`, with the service's defaults), one
after the other, and stops each before the next starts.

The baseline is a reproduction of how the model was served before: a plain HTTP server that
handles one request at a time and decodes each question alone with beam search 5 and
`max_length=512`, without batching or grounding. The script starts it itself (127.0.0.1, a free
port, a subprocess) on the same model directory: `--model-dir`, or by default the directory of the
BentoML model that the Bento reports in /model_info (looked up under BENTOML_HOME).

Measured for both: keyword F1 on `--data` (`keyword_extractor.text.metrics.score`), then throughput and
p50/p95 latency of single-question requests at concurrency 1 and 16 (`--requests 64,256`). The table
and the JSON name the CPU (`keyword_extractor.common.cpu_info`) and the precision each variant chose at load
(`/model_info`'s `precision`).

`--emulate-avx2` serves every variant and the original as on an AVX2-only CPU with no fast int8
kernel (`benchmarks/avx2_emulation`): an emulation on this CPU, labelled as such in the output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import psutil

from keyword_extractor.common.cli import add_labelled_file, add_model_dir
from keyword_extractor.common.cpu_info import cpu_label, describe_cpu
from keyword_extractor.common.paths import PROJECT_ROOT
from service_support.local_server import free_port

CONCURRENCY = (1, 16)
EMULATION_DIR = Path(__file__).resolve().parent / "avx2_emulation"
# torch's own kernels, MKL and oneDNN limited to AVX2; sitecustomize turns oneDNN's int8 product off
AVX2_EMULATION = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "PYTHONPATH": str(EMULATION_DIR),
}


# --- the original approach, reproduced --------------------------------------------------------------------


def serve_original(model_dir: str, port: int) -> None:
    """One request at a time: tokenize, generate(num_beams=5, max_length=512), split on commas."""
    import torch
    from transformers import AutoTokenizer, BartForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = BartForConditionalGeneration.from_pretrained(model_dir).eval()
    model.generation_config.max_new_tokens = None  # exported dirs cap new tokens; the original used max_length=512

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection, as a single-threaded server needs

        def do_GET(self) -> None:  # readiness
            self._reply(200, {"ok": True})

        def do_POST(self) -> None:
            text = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))["text"]
            input_ids = torch.tensor([tokenizer.encode(text)])
            with torch.inference_mode():
                output = model.generate(input_ids, eos_token_id=tokenizer.eos_token_id, max_length=512, num_beams=5)
            decoded = tokenizer.decode(output[0], skip_special_tokens=True)
            self._reply(200, {"keywords": [k.strip() for k in decoded.split(",") if k.strip()]})

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # quiet
            pass

    class Server(HTTPServer):
        request_queue_size = 128  # queued, not refused, under concurrency 16

    Server(("127.0.0.1", port), Handler).serve_forever()


def start_original(
    model_dir: str, timeout_s: float = 300, emulation: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.serve_bench",
            "--serve-original",
            "--model-dir",
            model_dir,
            "--port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            **(emulation or {}),
            "PYTHONPATH": os.pathsep.join(filter(None, [(emulation or {}).get("PYTHONPATH"), str(PROJECT_ROOT)])),
        },
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    import httpx

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the original-approach server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("the original-approach server did not start")


# --- measuring ---------------------------------------------------------------------------------------------


def ask(client, url: str, question: str) -> tuple[list[str], float, int]:
    """(keywords, seconds, status); a dropped connection counts as an error (status 599), not a crash."""
    import httpx

    began = time.perf_counter()
    try:
        response = client.post(f"{url}/extract", json={"text": question})
    except httpx.TransportError:
        return [], time.perf_counter() - began, 599
    seconds = time.perf_counter() - began
    keywords = response.json().get("keywords", []) if response.status_code == 200 else []
    return keywords, seconds, response.status_code


def load_run(client, url: str, questions: list[str], concurrency: int, n: int) -> dict[str, float]:
    """n single-question requests, `concurrency` at a time: throughput and latency percentiles."""
    batch = [questions[i % len(questions)] for i in range(n)]
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(lambda q: ask(client, url, q), batch))
    wall = time.perf_counter() - began
    latencies = np.array([seconds for _, seconds, _ in results]) * 1000
    return {
        "requests": n,
        "errors": sum(status != 200 for _, _, status in results),
        "throughput_rps": n / wall,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
    }


def quality(client, url: str, questions: list[str], golds: list[list[str]], batch_limit: int | None) -> dict:
    """Keyword F1 on the data file: the Bento answers in batches when it can, the original one at a time."""
    from keyword_extractor.text import metrics

    preds: list[list[str]] = []
    if batch_limit:
        for start in range(0, len(questions), batch_limit):
            response = client.post(f"{url}/extract_batch", json={"texts": questions[start : start + batch_limit]})
            response.raise_for_status()
            preds.extend(response.json()["keywords"])
    else:
        preds = [ask(client, url, q)[0] for q in questions]
    scores = metrics.score(golds, preds, questions)
    return {"f1": scores.f1, "precision": scores.precision, "recall": scores.recall, "grounded": scores.grounded_rate}


def measure(
    client,
    url: str,
    questions,
    golds,
    requests: list[int],
    batch_limit: int | None,
    label: str,
    with_f1: bool = True,
    processes: Callable[[], list[psutil.Process]] | None = None,
) -> dict:
    """F1, then each concurrency level; with `processes`, the server's CPU ms per request, per process role."""
    from benchmarks.bento_server import cpu_seconds

    me = psutil.Process()
    for question in questions[:3]:  # warm-up (first calls pay one-off costs)
        ask(client, url, question)
    result: dict = {}
    if with_f1:
        result["quality"] = quality(client, url, questions, golds, batch_limit)
        print(f"  {label}: F1 {result['quality']['f1']:.4f}", flush=True)
    else:  # the warm-up the F1 pass would have been: the batching queue times its first batches
        for question in questions[:16]:
            ask(client, url, question)
    for concurrency, n in zip(CONCURRENCY, requests):
        watched = processes() if processes else []
        before = {**cpu_seconds(watched), **cpu_seconds([me], "load generator")}
        result[f"c{concurrency}"] = run = load_run(client, url, questions, concurrency, n)
        after = {**cpu_seconds(watched), **cpu_seconds([me], "load generator")}
        run["cpu_ms_per_request"] = {k: 1000 * (after[k] - before.get(k, 0.0)) / n for k in after}
        print(f"  {label}: concurrency {concurrency}: {run['throughput_rps']:.2f} req/s", flush=True)
    return result


def model_dir_of(client, url: str) -> str:
    """The directory of the BentoML model the Bento serves (same BENTOML_HOME as the server)."""
    import bentoml

    tag = client.get(f"{url}/model_info").json()["tag"]
    return bentoml.models.get(tag).path


def table(bentos: dict[str, dict], original: dict, cpu: str = "") -> str:
    """One column per Bento variant and the original, then each variant's ratio to the original."""
    names = list(bentos)
    chosen = [(bentos[n]["model"].get("precision") or {}).get("effective", "?") for n in names]
    lines = [f"CPU: {cpu}"] if cpu else []
    lines.append(f"{'precision chosen at load':28s}" + "".join(f" {c.replace('off', 'fp32'):>12s}" for c in chosen))
    rows = [("keyword F1", "quality", "f1", "{:.4f}")] if "quality" in original else []
    for c in CONCURRENCY:
        rows += [
            (f"c={c} throughput (req/s)", f"c{c}", "throughput_rps", "{:.2f}"),
            (f"c={c} p50 latency (ms)", f"c{c}", "p50_ms", "{:.1f}"),
            (f"c={c} p95 latency (ms)", f"c{c}", "p95_ms", "{:.1f}"),
            (f"c={c} errors", f"c{c}", "errors", "{:d}"),
        ]
    header = f"{'(throughput: higher is better)':28s}" + "".join(f" {n:>12s}" for n in [*names, "original"])
    lines.append(header + "".join(f" {n + '/orig':>14s}" for n in names))
    for name, group, key, fmt in rows:
        b = original[group][key]
        cells = "".join(f" {fmt.format(bentos[n][group][key]):>12s}" for n in names) + f" {fmt.format(b):>12s}"
        ratios = "".join(f" {(f'{bentos[n][group][key] / b:.2f}x' if b else '-'):>14s}" for n in names)
        lines.append(f"{name:28s}{cells}{ratios}")
    return "\n".join(lines)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'name:KEY=VALUE,KEY=VALUE' (or just 'name') -> (name, overrides)."""
    name, _, rest = text.partition(":")
    overrides = dict(item.split("=", 1) for item in rest.split(",") if item.strip())
    return name, overrides


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="base URL of the running Bento, e.g. http://127.0.0.1:3000")
    add_model_dir(parser, required=False, help="model directory for the original approach (default: the Bento's model)")
    add_labelled_file(parser)
    parser.add_argument("--limit", type=int, help="use only the first N questions of --data (quick runs)")
    parser.add_argument("--requests", default="64,256", help="requests at concurrency 1 and 16 (default: 64,256)")
    parser.add_argument(
        "--variant",
        action="append",
        help="without --url: serve --model-dir once per variant, NAME:KEY=VALUE,... (environment overrides)",
    )
    parser.add_argument("--no-f1", action="store_true", help="speed only (models with random weights)")
    parser.add_argument(
        "--emulate-avx2",
        action="store_true",
        help="serve as on an AVX2-only CPU without a fast int8 kernel (an emulation on this CPU; needs --model-dir)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--serve-original", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.serve_original:
        serve_original(args.model_dir, args.port)
        return {}
    if not args.url and not args.model_dir:
        parser.error("give --url of a running Bento, or --model-dir to serve")
    if args.url and (args.variant or args.emulate_avx2):
        parser.error("--variant and --emulate-avx2 need --model-dir without --url (the script serves each itself)")
    requests = [int(n) for n in args.requests.split(",")]
    if len(requests) != len(CONCURRENCY) or min(requests) < 1:
        parser.error("--requests takes two positive counts, for concurrency 1 and 16")
    result = bench(args, requests)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def bench(args: argparse.Namespace, requests: list[int]) -> dict:
    """Every Bento variant, then the original approach, on the same questions; the table printed."""
    emulation = AVX2_EMULATION if args.emulate_avx2 else {}
    import httpx

    from benchmarks import bento_server
    from keyword_extractor.data.tsv import load_pairs
    from keyword_extractor.text.keywords import parse_keywords

    pairs = load_pairs(args.data)
    if args.limit:
        pairs = pairs.head(args.limit)
    questions = pairs["query"].tolist()
    golds = [parse_keywords(cell) for cell in pairs["keyword"]]
    with_f1 = not args.no_f1
    bentos: dict[str, dict] = {}
    limits = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=32))
    with limits as client:

        def measure_bento(label: str, url: str, processes=None) -> dict:
            info = client.get(f"{url}/model_info").json()
            batch_limit = min(64, info["limits"]["max_batch_texts"])
            print(f"{label} {url}: model {info['tag']} (v{info['version']})", flush=True)
            found = measure(client, url, questions, golds, requests, batch_limit, label, with_f1, processes)
            return {**found, "model": info}

        if args.url:
            url = args.url.rstrip("/")
            bentos["bento"] = measure_bento("bento", url)
            model_dir = args.model_dir or model_dir_of(client, url)
        else:
            model_dir = args.model_dir
            for label, overrides in [parse_variant(v) for v in args.variant or ["bento"]]:
                with bento_server.serving(model_dir, {**emulation, **overrides}) as server:
                    bentos[label] = {**measure_bento(label, server.url, server.family), "env": overrides}
        print(f"original approach on {model_dir}", flush=True)
        process, original_url = start_original(model_dir, emulation=emulation)
        try:
            server = [psutil.Process(process.pid)]
            original = measure(
                client, original_url, questions, golds, requests, None, "original", with_f1, lambda: server
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    return _report(args, bentos, original, model_dir, len(questions), requests, emulation)


def _report(
    args: argparse.Namespace,
    bentos: dict[str, dict],
    original: dict,
    model_dir: str,
    questions: int,
    requests: list[int],
    emulation: dict,
) -> dict:
    info = next(iter(bentos.values()))["model"]
    result = {
        "variants": bentos,
        "original": original,
        "model": info,
        "model_dir": str(model_dir),
        "data": str(args.data),
        "questions": questions,
        "requests": dict(zip((f"c{c}" for c in CONCURRENCY), requests)),
    }
    cpu = cpu_label() + (" (emulating AVX2 without a fast int8 kernel)" if emulation else "")
    result["machine"] = {
        "cpu_cores": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        **describe_cpu(),
        "label": cpu,
        "emulation": emulation or None,
    }
    print()
    print(table(bentos, original, cpu))
    return result


if __name__ == "__main__":
    main()
