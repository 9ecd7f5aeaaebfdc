#!/usr/bin/env bash
# Register every deployment of prefect.yaml with the Prefect server at PREFECT_API_URL, creating the
# process work pools they name when they do not exist yet (safe to run again).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT=${PREFECT:-.venv/bin/prefect}
PYTHON=${PYTHON:-.venv/bin/python}
pools=$("$PYTHON" -c '
import yaml
with open("prefect.yaml", encoding="utf-8") as file:
    spec = yaml.safe_load(file)
print("\n".join(sorted({d["work_pool"]["name"] for d in spec["deployments"]})))
')
for pool in $pools; do
    if "$PREFECT" --no-prompt work-pool inspect "$pool" >/dev/null 2>&1; then
        echo "work pool $pool: exists"
    else
        "$PREFECT" --no-prompt work-pool create "$pool" --type process
    fi
done
"$PREFECT" --no-prompt deploy --all
