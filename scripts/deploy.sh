#!/usr/bin/env bash
# Register every deployment of prefect.yaml with the Prefect server at PREFECT_API_URL, creating the
# process work pools they name when they do not exist yet (safe to run again).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT=${PREFECT:-.venv/bin/prefect}
PYTHON=${PYTHON:-.venv/bin/python}
# Without a server URL, `prefect deploy` would deploy to a temporary server that is gone when it exits.
api_url=${PREFECT_API_URL:-$("$PREFECT" config view 2>/dev/null | sed -n "s/^PREFECT_API_URL='\(.*\)'.*/\1/p")}
if [ -z "$api_url" ]; then
    echo "error: PREFECT_API_URL is not set: start the server (make server) and use make deploy, or" \
        "export PREFECT_API_URL=http://127.0.0.1:4200/api" >&2
    exit 2
fi
echo "deploying to $api_url"
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
