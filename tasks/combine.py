"""Prefect task "combine-training-data": the run's training file, with the extra training files added.

Each extra file has already passed validate-data (the same rules, the same leakage check against the
test file) before it gets here.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from keyword_extractor.data.combine import CombinedData, combine_training_files


@task(name="combine-training-data")
def combine_training_data(train_path: str, extra_paths: list[str], out: str) -> CombinedData:
    combined = combine_training_files(train_path, extra_paths, out)
    extras = ", ".join(f"{Path(path).name} {rows}" for path, rows in list(combined.rows_by_file.items())[1:])
    get_run_logger().info(
        "training on %d rows: %s %d + extra files (%s); %d bundled rows relabelled by an extra file; written to %s",
        combined.rows,
        Path(train_path).name,
        combined.rows_by_file[train_path],
        extras,
        combined.replaced,
        combined.path,
    )
    return combined
