# Mosaic: `make demo` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-prod demo test lint bench-analysis bench-validity bench-viewer clean

install: $(STAMP) node_modules/.installed browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A server needs neither the test tools nor a browser: runtime packages only.
install-prod: node_modules/.installed
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch node_modules/.installed

# Browser tests drive Debian's Chromium: Playwright cannot download its own browser here.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "Chromium is missing: install Debian's 'chromium' package (sudo apt-get install chromium)"; exit 1; \
		fi; \
	fi

# The port is checked before anything is installed or built; the links and the admin
# login are printed last, once the server listens.
demo:
	@$(PYTHON) tools/port_free.py $(HOST) $(PORT)
	@$(MAKE) --no-print-directory install
	@$(BIN)/python manage.py migrate --noinput -v 0
	@$(BIN)/python manage.py serve_demo --host $(HOST) --port $(PORT) --simulate-raters 12

test: install
	$(BIN)/python -m pytest

bench-viewer: install
	$(BIN)/python bench/viewer/bench_viewer.py

bench-analysis: install
	$(BIN)/python bench/analysis/run.py

# Monte Carlo check of intervals, ranking and screening against known truth (about 15 min);
# REPS=50 for a quick look. One BLAS thread: its matrices are small, and threads
# contending for two busy cores made them 10-100x slower.
REPS ?= 200
bench-validity: install
	OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/validity/run.py --reps $(REPS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules var
