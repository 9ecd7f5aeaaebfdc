"""Gather the step results of `benchmarks/gpu_check.sh` into one JSON and one Markdown table.

    python -m benchmarks.gpu_report OUT_DIR [--dry-run 0|1]

Reads OUT_DIR/steps.tsv, setup.log's last line (torch/CUDA/GPU), train_b*.json, finetune.json and
serve_*.json (whichever exist: a failed step leaves its table out and its status in the steps
table), writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def environment(out: Path) -> dict:
    log = out / "setup.log"
    for line in reversed(log.read_text().splitlines() if log.is_file() else []):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def gather(out: Path, dry_run: bool) -> dict:
    with (out / "steps.tsv").open() as handle:
        steps = list(csv.DictReader(handle, delimiter="\t"))
    return {
        "dry_run": dry_run,
        "environment": environment(out),
        "steps": steps,
        "training_throughput": {p.stem: read_json(p) for p in sorted(out.glob("train_b*.json"))},
        "finetune": read_json(out / "finetune.json"),
        "serving": {p.stem: read_json(p) for p in sorted(out.glob("serve_*.json"))},
    }


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"# GPU check{' (dry run on CPU)' if report['dry_run'] else ''}",
        "",
        f"{env.get('gpu', 'no GPU')} · torch {env.get('torch')} · CUDA {env.get('cuda')} · bf16 {env.get('bf16')}",
        "",
        "| step | status | seconds |",
        "|---|---|---:|",
        *(f"| {s['step']} | {s['status']} | {s['seconds']} |" for s in report["steps"]),
    ]
    if report["training_throughput"]:
        first_env = next(iter(report["training_throughput"].values()))["environment"]
        shape, precision = first_env.get("shape", "kobart-base"), first_env["precision"]
        device = first_env["device"] if "cpu" not in first_env else first_env["cpu"]["cpu"]
        lines += [
            "",
            f"## Training throughput, {shape} shape, {precision} on {device}",
            "",
            "| batch | mode | samples/s | first pass | tokens/sample | × pad-to-512 |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for result in report["training_throughput"].values():
            batch = result["environment"]["batch_size"]
            for mode in ("pad_to_512", "dynamic_padding", "dynamic_length_grouped"):
                row = result[mode]
                ratio = row.get("speedup_vs_pad_to_512", 1.0)
                first = row.get("first_pass_samples_per_s", row["samples_per_s"])
                lines.append(
                    f"| {batch} | {mode} | {row['samples_per_s']:.1f} | {first:.1f} | "
                    f"{row['tokens_per_sample']:.0f} | {ratio:.1f} |"
                )
    if report["finetune"]:
        f = report["finetune"]
        lines += [
            "",
            "## Tiny fine-tune through `python -m keyword_extractor.training`",
            "",
            f"{f['epochs_run']} epochs in {f['seconds']} s, best val_f1 {f['best_val_f1']}, "
            f"best val_loss {f['best_val_loss']}",
        ]
    for name, result in report["serving"].items():
        if not result:
            continue
        lines += [
            "",
            f"## Decoding throughput: {name.removeprefix('serve_')} model",
            "",
            "| precision | per call | questions/s | first pass | × first precision at 1 | F1 | answers changed |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for run in result["runs"]:
            changed = next((v for k, v in run.items() if k.startswith("answers_differing")), "")
            lines.append(
                f"| {run['precision']} | {run['questions_per_call']} | {run['questions_per_s']} | "
                f"{run.get('first_pass_questions_per_s', '')} | "
                f"{run['ratio_vs_first_precision_at_1']} | {run.get('f1', '')} | {changed} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the folder gpu_check.sh wrote")
    parser.add_argument("--dry-run", type=int, choices=[0, 1], default=0)
    args = parser.parse_args(argv)
    report = gather(args.out, bool(args.dry_run))
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
