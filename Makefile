# Two entry points a newcomer needs: `make pipeline` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup pipeline test browser postgres deploy compare lint clean

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

deploy: setup  ## every deployment of prefect.yaml, creating its work pools if missing (PREFECT_API_URL: the server)
	PREFECT=$(VENV)/bin/prefect PYTHON=$(PY) bash scripts/deploy.sh

compare: setup  ## registered versions side by side (F1 vs baseline, recipe, data); A=3 B=5 adds their differing answers
	$(PY) -m keyword_extractor.integrations.compare $(if $(and $(A),$(B)),--diff $(A) $(B))

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf artifacts/runs artifacts/mlflow.db artifacts/mlruns .pytest_cache
