"""docs/architecture.md lists every module of coda_edu/ (a new module without its line fails)."""

from __future__ import annotations

import re

from tests.conftest import REPO


def documented_modules(text: str) -> set[str]:
    """Module paths named in the first cell of the module table's rows: a full path
    (`coda_edu/x/y.py`) names itself, a bare `z.py` after it in the same cell is a module of
    the same folder."""
    named = set()
    for line in text.splitlines():
        if not line.startswith("| `coda_edu/"):
            continue
        first_cell = line.split("|")[1]
        folder = None
        for token in re.findall(r"`([^`]+)`", first_cell):
            if token.startswith("coda_edu/"):
                folder = token.rstrip("/") if token.endswith("/") else token.rsplit("/", 1)[0]
                if token.endswith(".py"):
                    named.add(token)
            elif folder is not None and token.endswith(".py"):
                named.add(f"{folder}/{token}" if "/" not in token else f"coda_edu/{token}")
    return named


def test_every_module_has_its_line_in_architecture_md():
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "coda_edu").rglob("*.py")}
    named = documented_modules((REPO / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert sorted(modules - named) == [], "modules without a line in docs/architecture.md's table"
    assert sorted(named - modules) == [], "lines in docs/architecture.md's table for modules that do not exist"


def test_the_rule_reads_full_paths_and_bare_names_of_the_same_folder():
    text = (
        "| `coda_edu/data/acdc.py`, `la.py` | x |\n| `coda_edu/cli.py` | `other.py` in the text |\n"
        "| `coda_edu/presets/` | `quick.yaml` |\n"
    )
    assert documented_modules(text) == {"coda_edu/data/acdc.py", "coda_edu/data/la.py", "coda_edu/cli.py"}
