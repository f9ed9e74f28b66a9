# Two entry points for a fresh machine (see README.md):
#   make sweep   set up .venv and run the default sweep to results/report/hotspots.md
#   make test    set up .venv (and, as root, the Debian packages the tests use) and run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: setup sweep test lint system-deps clean

$(BIN)/memsweep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/memsweep

sweep: setup
	$(BIN)/snakemake --cores $(CORES)

# Chromium (report test) and SLURM (cluster test) come from Debian; installed only as root.
system-deps:
	@bash scripts/system-deps.sh

test: setup system-deps
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
