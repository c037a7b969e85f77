# The two quick-start commands (see README.md):
#   make demo   set up .venv (CPU PyTorch) and train Co-DA on the embedded synthetic data
#   make test   set up .venv with the notebook and dev extras and run the test suite
VENV ?= .venv
export CODA_EDU_VENV := $(VENV)

.PHONY: demo test setup setup-dev lab notebooks clean help

help:
	@echo "make demo | make test | make lab | make notebooks | make clean"

setup:
	@scripts/setup_env.sh

setup-dev:
	@scripts/setup_env.sh notebooks,dev

demo: setup
	$(VENV)/bin/coda-edu train

test: setup-dev
	$(VENV)/bin/python -m pytest

lab:
	@scripts/setup_env.sh notebooks,lab
	$(VENV)/bin/jupyter lab notebooks/

notebooks: setup-dev
	$(VENV)/bin/coda-edu notebooks run --quick --out runs/notebooks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
