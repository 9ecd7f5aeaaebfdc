"""Memory of the served Bento: peak RSS of all its processes, and a leak check under sustained load.

    python -m benchmarks.serve_memory --model-dir /tmp/perf/tiny/model [--requests 10000] [--json out.json]
    python -m benchmarks.serve_memory --model-dir /tmp/perf/kobart/model --requests 2000 --env KEYWORD_QUANTIZE=int8

The model directory is served with `bentoml serve` on 127.0.0.1 (`benchmarks.bento_server`). A
sampler sums the resident memory of the arbiter and every service worker (psutil) twice a second.
`--requests` single-question requests go to `/extract`, `--concurrency` at a time, cycling through the
questions of the training and test files, and RSS is read after every `--sample-every` of them (the
curve). RSS after `--warmup` requests is compared with RSS at the end: stable means the end is within
`--tolerance` (10%) of the post-warm-up value. The warm-up has to cover the processes' high-water mark:
the public service grows by ~70 MiB over its first few thousand requests (garbage of reference cycles
that Python's full collections only reclaim in proportion to the heap, and allocator arenas) and then
stays flat. The run stops sending after `--time-limit-s` and says how many requests it managed.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from benchmarks import bento_server
from keyword_extractor.common.cli import add_model_dir
from keyword_extractor.common.cpu_info import describe_cpu
from keyword_extractor.common.paths import PROJECT_ROOT as ROOT
from keyword_extractor.data.tsv import load_pairs
from service_support.local_server import ServerProcess

MIB = 1 << 20


def breakdown(server: ServerProcess) -> dict[str, float]:
    """RSS in MiB per role (workers of one service summed)."""
    found: dict[str, float] = {}
    for process in server.family():
        try:
            rss = process.memory_info().rss
        except psutil.Error:
            continue
        name = bento_server.role(process)
        found[name] = found.get(name, 0.0) + rss / MIB
    return found


class Sampler(threading.Thread):
    """Total RSS of the server's processes every `interval` seconds; keeps the peak and the latest."""

    def __init__(self, server: ServerProcess, interval: float = 0.5):
        super().__init__(daemon=True)
        self.server = server
        self.interval = interval
        self.peak = 0
        self.peak_breakdown: dict[str, float] = {}
        self.latest = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.latest = self.server.rss_bytes()
            if self.latest > self.peak:
                self.peak = self.latest
                self.peak_breakdown = breakdown(self.server)
            self.stopped.wait(self.interval)

    def settled(self, samples: int = 4) -> int:
        """Median of a few fresh samples: one sample can land mid-allocation."""
        values = []
        for _ in range(samples):
            values.append(self.server.rss_bytes())
            time.sleep(self.interval)
        return sorted(values)[len(values) // 2]


def load(url: str, questions: list[str], count: int, concurrency: int, deadline: float, start: int = 0) -> dict:
    """`count` requests to /extract, `concurrency` at a time, until `deadline` (time.monotonic())."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    sent = 0
    began = time.perf_counter()

    def worker(offset: int) -> None:
        nonlocal sent
        with httpx.Client(timeout=120) as client:
            for i in range(offset, count, concurrency):
                if time.monotonic() > deadline:
                    return
                try:
                    status = client.post(f"{url}/extract", json={"text": questions[(start + i) % len(questions)]})
                    code = status.status_code
                except httpx.HTTPError:
                    code = 599
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                    sent += 1

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    seconds = time.perf_counter() - began
    return {"sent": sent, "statuses": statuses, "seconds": seconds, "rps": sent / seconds if seconds else 0.0}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_dir(parser, help="keyword model directory to serve")
    parser.add_argument("--requests", type=int, default=10_000, help="requests in all, warm-up included")
    parser.add_argument("--warmup", type=int, default=3000, help="requests before the reference RSS reading")
    parser.add_argument("--sample-every", type=int, default=1000, help="requests between two RSS readings")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--time-limit-s", type=float, default=1800, help="stop sending after this")
    parser.add_argument("--tolerance", type=float, default=0.10, help="allowed RSS growth after warm-up")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)")
    parser.add_argument("--label", default="", help="name of this run in the output")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.requests:
        parser.error("--warmup must be between 0 and --requests")
    result = measure(args, dict(item.split("=", 1) for item in args.env))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def measure(args: argparse.Namespace, overrides: dict[str, str]) -> dict:
    """Serve the model, send the requests in steps, and read the memory of every process after each."""
    questions = [*load_pairs(ROOT / "data" / "train.tsv")["query"], *load_pairs(ROOT / "data" / "test.tsv")["query"]]
    deadline = time.monotonic() + args.time_limit_s
    with bento_server.serving(args.model_dir, overrides) as server:
        sampler = Sampler(server)
        sampler.start()
        idle = sampler.settled()
        idle_breakdown = breakdown(server)
        curve: list[dict] = []
        results: list[dict] = []
        after_warmup = 0
        sent = 0
        while sent < args.requests and time.monotonic() < deadline:
            step = min(args.sample_every, args.requests - sent, max(args.warmup - sent, 0) or args.requests)
            results.append(load(server.url, questions, step, args.concurrency, deadline, sent))
            sent += results[-1]["sent"]
            curve.append({"requests": sent, "rss_mib": sampler.settled(2) / MIB, **breakdown(server)})
            if sent == args.warmup:
                after_warmup = int(curve[-1]["rss_mib"] * MIB)
        at_end = sampler.settled()
        end_breakdown = breakdown(server)
        sampler.stopped.set()
        sampler.join()
    growth = at_end / after_warmup - 1 if after_warmup else float("nan")
    measured = [r for r, point in zip(results, curve) if point["requests"] > args.warmup]
    seconds = sum(r["seconds"] for r in measured)
    return {
        "label": args.label,
        "model_dir": str(args.model_dir),
        "env": overrides,
        "requests_sent": sent,
        "requests_planned": args.requests,
        "errors": sum(n for r in results for code, n in r["statuses"].items() if code != 200),
        "rps_after_warmup": sum(r["sent"] for r in measured) / seconds if seconds else 0.0,
        "rss_idle_mib": idle / MIB,
        "rss_idle_by_process_mib": idle_breakdown,
        "rss_after_warmup_mib": after_warmup / MIB,
        "rss_end_mib": at_end / MIB,
        "rss_end_by_process_mib": end_breakdown,
        "rss_peak_mib": sampler.peak / MIB,
        "rss_peak_by_process_mib": sampler.peak_breakdown,
        "growth_after_warmup": growth,
        "stable": abs(growth) <= args.tolerance,
        "warmup": args.warmup,
        "curve": curve,
        "machine": {"cpu_cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], **describe_cpu()},
    }


if __name__ == "__main__":
    main()
