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

.PHONY: setup demo compare test test-fast lint ruff format report bench browser axe eslint jslint jstest clean

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

## Compare models (README "Compare models"): each member run of COMPARE_CONFIG (normal run
## configs, Lite0 and Lite1 on the bundled photos by default) through the normal workflow,
## then the comparison into results/<compare run>/compare.h5 and its site (site/index.html).
## Resumable like `make demo`.
COMPARE_CONFIG ?= workflow/config/compare.yaml
compare: setup
	@set -e; for member in $$($(BIN)/python -c "import yaml; print(' '.join(yaml.safe_load(open('$(COMPARE_CONFIG)'))['compare']['runs']))"); do \
	  echo "== member run $$member"; \
	  $(BIN)/snakemake --profile workflow/profiles/local --cores $(CORES) --configfile $$member; \
	done
	$(BIN)/snakemake --snakefile workflow/compare.smk --profile workflow/profiles/local --cores $(CORES) --configfile $(COMPARE_CONFIG)
	@$(BIN)/python -c "import yaml; c = yaml.safe_load(open('$(COMPARE_CONFIG)')); r = c.get('results_dir', 'results') + '/' + c['run']; print('\nThe comparison:', r + '/compare.h5'); print('Read it: model-atlas compare', r); print('Its site:', r + '/site/index.html')"

## The test suite (installs Chromium from Debian's packages for the browser tests when root,
## and axe-core and ESLint from their npm packages): the site's JavaScript is linted and
## unit-tested first, then pytest runs.
test: setup browser axe ruff jslint jstest
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# The npm tools, fetched from the npm registry into .cache/ at pinned versions (never part of
# the repository): axe-core (WCAG checks run inside the browser tests) and ESLint (the site's
# scripts). One install of both: npm removes from the folder what a later install does not name.
AXE_VERSION ?= 4.10.3
ESLINT_VERSION ?= 9.39.4
NPM_TOOLS := .cache/npm/.tools-axe-core-$(AXE_VERSION)-eslint-$(ESLINT_VERSION)
AXE := .cache/npm/node_modules/axe-core/axe.min.js
ESLINT := .cache/npm/node_modules/.bin/eslint
axe eslint: $(NPM_TOOLS)

$(NPM_TOOLS):
	@command -v npm >/dev/null 2>&1 || { echo "npm not found: the accessibility tests and the JavaScript lint will be skipped"; exit 0; }; \
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix .cache/npm \
	  axe-core@$(AXE_VERSION) eslint@$(ESLINT_VERSION) && touch $@

## The site's JavaScript: ESLint (rules in eslint.config.cjs) and the unit tests in tests/js
## (`node --test`); each says so and passes when its tool is missing, as the browser tests skip.
jslint: eslint
	@if ! command -v node >/dev/null 2>&1 || [ ! -x $(ESLINT) ]; then echo "node or ESLint not found: the JavaScript lint is skipped"; \
	else $(ESLINT) site/static tests/js eslint.config.cjs && echo "eslint: site/static and tests/js are clean"; fi

jstest:
	@if ! command -v node >/dev/null 2>&1; then echo "node not found: the JavaScript unit tests are skipped"; \
	else node --test --test-reporter=dot tests/js/*.test.js && echo "node --test: the JavaScript unit tests pass"; fi

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
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/featurevis.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/site.py
	$(BIN)/python bench/search.py

clean:
	rm -rf results .snakemake
