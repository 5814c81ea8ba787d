# model-atlas: every set-up step lives here, so a fresh clone needs only `make demo` / `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
CONFIG ?= workflow/config/default.yaml
# glibc malloc returns memory to the OS too eagerly for torch on these CPUs; these two
# settings made EfficientNet-Lite0 about 3x faster here (see docs/PERFORMANCE.md).
export MALLOC_MMAP_MAX_ ?= 0
export MALLOC_TRIM_THRESHOLD_ ?= 100000000000

.PHONY: setup demo test test-fast lint ruff format report bench browser axe clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

## The main job: the embedded default run (EfficientNet-Lite0 on the bundled photos).
demo: setup
	$(BIN)/snakemake --profile workflow/profiles/local --cores $(CORES) --configfile $(CONFIG)
	@$(BIN)/python -c "import yaml; c = yaml.safe_load(open('$(CONFIG)')); r = c.get('results_dir', 'results') + '/' + c.get('run', 'demo'); print('\nResults are in', r + '/'); print('Open the atlas:', r + '/site/index.html')"

## The test suite (installs Chromium from Debian's packages for the browser tests when root,
## and axe-core from its npm package for the accessibility tests).
test: setup browser axe
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# axe-core (WCAG checks run inside the browser tests), fetched from the npm registry into
# .cache/ at a pinned version: never part of the repository.
AXE_VERSION ?= 4.10.3
AXE := .cache/npm/node_modules/axe-core/axe.min.js
axe: $(AXE)

$(AXE):
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: the accessibility tests will be skipped"; exit 0; }; \
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix .cache/npm axe-core@$(AXE_VERSION)

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found and not root: browser tests will be skipped"; fi; }

## Python lint and format check (rules in pyproject.toml); `make format` applies the formatter.
ruff: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lint: ruff
	$(BIN)/snakemake --lint --configfile $(CONFIG)

## Snakemake's HTML report of a finished run: jobs, runtimes (benchmarks), code, config.
REPORT ?= results/report.html
report: setup
	$(BIN)/snakemake --report $(REPORT) --configfile $(CONFIG)

bench: setup
	$(BIN)/python bench/featurevis.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/site.py

clean:
	rm -rf results .snakemake
