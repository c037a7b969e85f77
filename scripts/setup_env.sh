#!/usr/bin/env bash
# Create or refresh the project's virtual environment and install coda-edu into it.
#
#   scripts/setup_env.sh [EXTRAS]      e.g. scripts/setup_env.sh notebooks,dev
#
# Environment variables:
#   CODA_EDU_VENV    where the environment lives (default: .venv)
#   CODA_EDU_TORCH   pip arguments for PyTorch, e.g. a CUDA build:
#                    CODA_EDU_TORCH="torch --index-url https://download.pytorch.org/whl/cu126"
#                    Default: the CPU build of the tested release (torch==2.13.0).
#   PYTHON           interpreter used to create the environment (default: python3)
#
# With the dev extra (the browser tests use Playwright with Debian's chromium, never a
# downloaded browser) it also installs the `chromium` package when it is missing and this
# runs as root with apt-get (CI); otherwise it says how to install it.
#
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CODA_EDU_VENV:-.venv}"
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"
TESTED_TORCH="torch==2.13.0"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

if [ -n "${CODA_EDU_TORCH:-}" ]; then
    echo "[setup] installing PyTorch: $CODA_EDU_TORCH"
    # shellcheck disable=SC2086
    "$PY" -m pip install $CODA_EDU_TORCH
elif ! "$PY" -c "import torch" >/dev/null 2>&1; then
    if [ "$(uname -s)" = "Darwin" ]; then
        echo "[setup] installing PyTorch ($TESTED_TORCH, CPU/MPS build)"
        "$PY" -m pip install "$TESTED_TORCH"
    elif "$PY" -c "import urllib.request as u; u.urlopen('$CPU_INDEX/', timeout=5)" >/dev/null 2>&1; then
        echo "[setup] installing PyTorch ($TESTED_TORCH, CPU build from $CPU_INDEX)"
        "$PY" -m pip install "$TESTED_TORCH" --extra-index-url "$CPU_INDEX"
    else
        echo "[setup] installing PyTorch ($TESTED_TORCH; $CPU_INDEX is not reachable, so pip picks the build it finds)"
        "$PY" -m pip install "$TESTED_TORCH"
    fi
fi

stamp="$VENV/.coda-edu-installed${EXTRAS:+-${EXTRAS//,/-}}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[setup] installing coda-edu${EXTRAS:+ with extras [$EXTRAS]}"
    "$PY" -m pip install -e ".${EXTRAS:+[$EXTRAS]}"
    touch "$stamp"
fi

if [[ ",$EXTRAS," == *",dev,"* ]] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing Debian's chromium for the browser tests"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "[setup] note: the browser tests need chromium (sudo apt-get install chromium); they skip without it"
    fi
fi
