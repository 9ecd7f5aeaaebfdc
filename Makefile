# Two entry points a newcomer needs: `make pipeline` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The Prefect server `make server` starts; every other Prefect target talks to it (export another to override).
PREFECT_API_URL ?= http://127.0.0.1:4200/api
PREFECT_PORT := $(lastword $(subst :, ,$(subst /api,,$(PREFECT_API_URL))))
D ?= train-pipeline/local-cpu

.PHONY: setup pipeline test browser postgres server worker deploy run compare lint clean

setup: $(VENV)/.installed

# torch first, from the CPU wheel, so that requirements.txt's range installs nothing bigger.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

pipeline: setup  ## the whole pipeline (tiny, offline, CPU) on the bundled data: validate → … → build-bento
	$(PY) -m flows.train_pipeline --base-model tiny

test: setup browser postgres
	$(PY) -m pytest

browser:  ## Debian's Chromium and a CJK font for the browser test (apt-get; prints the command if it cannot)
	bash scripts/install_browser.sh

postgres:  ## PostgreSQL's server binaries for the stack test (apt-get; prints the command if it cannot)
	bash scripts/install_postgres.sh

server: setup  ## a Prefect server on 127.0.0.1 (embedded SQLite) for deployments; its own terminal
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

deploy: setup  ## every deployment of prefect.yaml on PREFECT_API_URL, creating its work pools if missing
	PREFECT_API_URL=$(PREFECT_API_URL) PREFECT=$(VENV)/bin/prefect PYTHON=$(PY) bash scripts/deploy.sh

worker: setup  ## a process worker polling local-process on PREFECT_API_URL; its own terminal
	PREFECT_API_URL=$(PREFECT_API_URL) $(VENV)/bin/prefect worker start --pool local-process

run: setup  ## run deployment D (train-pipeline/local-cpu), following its log to the summary; SET="training.epochs=12"
	PREFECT_API_URL=$(PREFECT_API_URL) $(PY) -m flows.run $(D) $(foreach setting,$(SET),--set $(setting))

compare: setup  ## registered versions side by side (F1 vs baseline, recipe, data); A=3 B=5 adds their differing answers
	@if [ -n "$(A)$(B)" ] && { [ -z "$(A)" ] || [ -z "$(B)" ]; }; then \
		echo "error: give both versions to compare answers: make compare A=3 B=5" >&2; exit 2; fi
	$(PY) -m keyword_extractor.integrations.compare $(if $(A)$(B),--diff $(A) $(B))

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf artifacts/runs artifacts/mlflow.db artifacts/mlruns .pytest_cache
