"""Run a deployment and stay with it: its log as it happens, then its final state and its summary.

    python -m flows.run train-pipeline/local-cpu --set training.epochs=12
    python -m flows.run train-pipeline/local-cpu --params '{"training": {"epochs": 12}}'

`prefect deployment run --watch` prints state changes only, and `--params` replaces a whole parameter:
`{"training": {"epochs": 12}}` dropped the deployment's other training options (its `accelerator: cpu`).
Here the options given are merged into the deployment's own parameters, field by field, and the run's
log lines (epochs, F1, the `pipeline summary:` line) are printed as they arrive. It ends with the final
state (`Completed`, `NotPromoted`, `NothingToDo`, `Failed`, ...) and the run's `pipeline-summary`
artifact. Exit status: 0 when the run completed (promoted or not), 1 when it did not, 2 on bad usage.
A worker must be polling the deployment's work pool (`make worker`).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
import time
from typing import Any

POLL_S = 2.0
LATE_WINDOW = 50  # log lines read again on each poll, for those stored out of order
SUMMARY_ARTIFACT = "pipeline-summary"


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` laid onto `base` field by field: nested objects merge, everything else replaces."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def parse_setting(text: str) -> dict[str, Any]:
    """`training.epochs=12` → {"training": {"epochs": 12}}; the value is JSON when it parses, else text."""
    path, separator, raw = text.partition("=")
    if not separator or not path.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE, e.g. training.epochs=12")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    for key in reversed(path.strip().split(".")):
        value = {key: value}
    return value


def parse_params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--params is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--params must be a JSON object")
    return value


def _log_line(log: Any) -> str:
    level = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}.get(log.level, str(log.level))
    return f"{log.timestamp:%H:%M:%S} {level:<7} {log.message}"


async def follow(deployment_name: str, overrides: dict[str, Any], timeout_s: float) -> int:
    """Start the run with the merged parameters, print its log until it ends, then its state and summary."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import LogSort
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            deployment = await client.read_deployment_by_name(deployment_name)
        except ObjectNotFound:
            print(f"error: no deployment {deployment_name!r} on {client.api_url} (run `make deploy`)", file=sys.stderr)
            return 2
        parameters = merged(deployment.parameters or {}, overrides)
        run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        print(f"flow run {run.name} ({run.id}) of {deployment_name}; parameters given: {json.dumps(overrides)}")
        print(f"waiting for a worker on pool {deployment.work_pool_name!r} (`make worker`) ...", flush=True)
        deadline, seen = time.monotonic() + timeout_s, set()
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id]))
        while True:
            state = (await client.read_flow_run(run.id)).state
            # a window behind the last page too: lines from other processes can arrive a little late
            logs = await client.read_logs(
                log_filter=log_filter, sort=LogSort.TIMESTAMP_ASC, offset=max(0, len(seen) - LATE_WINDOW)
            )
            for log in logs:
                if log.id not in seen:
                    seen.add(log.id)
                    print(_log_line(log), flush=True)
            if state is not None and state.is_final():
                break
            if time.monotonic() > deadline:
                print(f"still {state.name if state else 'pending'} after {timeout_s:.0f} s; not waiting longer")
                return 1
            await asyncio.sleep(POLL_S)
        print(f"\nfinal state: {state.name}" + (f": {state.message}" if state.message else ""))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[SUMMARY_ARTIFACT]), flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])
            )
        )
        if artifacts:
            print(f"\n{artifacts[-1].data}")
        return 0 if state.is_completed() else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("deployment", help="FLOW/DEPLOYMENT, e.g. train-pipeline/local-cpu (`prefect deployment ls`)")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        type=parse_setting,
        metavar="NAME=VALUE",
        help="one parameter, dotted into objects: training.epochs=12, force_promotion=true (repeatable)",
    )
    parser.add_argument(
        "--params", type=parse_params, default={}, help="parameters as a JSON object, merged like --set"
    )
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to follow the run [6 h]")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():  # from the environment or the active profile (`prefect config set`)
        print(
            "error: PREFECT_API_URL is not set, so there is no server to run a deployment on: start one "
            "(`make server`) and export PREFECT_API_URL=http://127.0.0.1:4200/api, or use `make run`",
            file=sys.stderr,
        )
        return 2
    overrides: dict[str, Any] = args.params
    for setting in args.settings:
        overrides = merged(overrides, setting)
    return asyncio.run(follow(args.deployment, overrides, args.timeout))


if __name__ == "__main__":
    raise SystemExit(main())
