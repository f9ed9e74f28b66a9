# Two entry points for a fresh machine (see README.md):
#   make sweep   set up .venv and run the default sweep to results/report/hotspots.md
#   make test    set up .venv (and, as root, the Debian packages the tests use) and run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# The SLURM executor plugin (pyproject.toml's `slurm` extra), outside the environment:
# Snakemake imports every plugin it finds at each start, and this one then asks `scontrol`
# for the cluster's configuration (about 10 s where no controller answers). Only
# tests/test_slurm.py puts it on PYTHONPATH; Snakemake finds plugins by module name there.
SLURM_PLUGIN := $(VENV)/slurm-plugin
# The tiny sweep the tests share; the lint parses the workflow with it.
TEST_CONFIG := .test/config/config.yaml

.PHONY: setup slurm-plugin sweep test lint system-deps clean

$(BIN)/memsweep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/memsweep

# --no-deps: what the plugins need besides each other is Snakemake's and is in .venv already.
$(SLURM_PLUGIN)/.installed: pyproject.toml $(BIN)/memsweep
	rm -rf $(SLURM_PLUGIN)
	$(BIN)/python -m pip install --quiet --no-deps --target $(SLURM_PLUGIN) \
	  $$($(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['slurm'])")
	PYTHONPATH=$(SLURM_PLUGIN) $(BIN)/python -c \
	  "import snakemake_executor_plugin_slurm, snakemake_executor_plugin_slurm_jobstep"
	touch $@

slurm-plugin: $(SLURM_PLUGIN)/.installed

# In a terminal: a progress line and one line per finished job (profiles/default's
# `logger: memsweep`); piped or under CI: Snakemake's plain log (README, "What you see").
sweep: setup
	$(BIN)/snakemake --cores $(CORES)

# Chromium (report test) and SLURM (cluster test) come from Debian; installed only as root.
system-deps:
	@bash scripts/system-deps.sh

test: setup slurm-plugin system-deps
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint --configfile $(TEST_CONFIG)

clean:
	rm -rf results .snakemake
