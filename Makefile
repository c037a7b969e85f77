# The two quick-start commands (see README.md):
#   make demo   set up .venv (CPU PyTorch) and train Co-DA on the embedded synthetic data
#   make test   set up .venv with the notebook and dev extras and run the test suite
# Also: make lab (JupyterLab on notebooks/), make book (the course site in build/book/html).
#   make lint   ruff check and ruff format --check (the rules are in pyproject.toml, [tool.ruff])
VENV ?= .venv
export CODA_EDU_VENV := $(VENV)

.PHONY: demo test lint setup setup-dev lab book notebooks clean help

help:
	@echo "make demo | make test | make lint | make lab | make book | make notebooks | make clean"

setup:
	@scripts/setup_env.sh

setup-dev:
	@scripts/setup_env.sh notebooks,dev

demo: setup
	$(VENV)/bin/coda-edu train

test: setup-dev
	$(VENV)/bin/python -m pytest

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# 'notebooks setup' first: JupyterLab then saves the series as committed (git stays clean).
lab:
	@scripts/setup_env.sh notebooks,lab
	$(VENV)/bin/coda-edu notebooks setup
	$(VENV)/bin/jupyter lab notebooks/

# The course site: the series executed at the quick size (build/book-notebooks), built
# with Jupyter Book into build/book/html (offline: no CDN). BOOK_FLAGS=--execute re-runs
# the notebooks even when executed copies exist.
book:
	@scripts/setup_env.sh notebooks,book
	$(VENV)/bin/python book/build.py $(BOOK_FLAGS)

notebooks: setup-dev
	$(VENV)/bin/coda-edu notebooks run --quick --out runs/notebooks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
