"""docs/architecture.md lists every module of coda_edu/ and coda_course/ (a new module without its line
fails), and the library never imports the course package."""

from __future__ import annotations

import re

from tests.conftest import REPO


def documented_modules(text: str) -> set[str]:
    """Module paths named in the first cell of the module table's rows: a full path
    (`coda_edu/x/y.py`) names itself, a bare `z.py` after it in the same cell is a module of
    the same folder."""
    named = set()
    for line in text.splitlines():
        package = next((p for p in PACKAGES if line.startswith(f"| `{p}/")), None)
        if package is None:
            continue
        first_cell = line.split("|")[1]
        folder = None
        for token in re.findall(r"`([^`]+)`", first_cell):
            if token.startswith(f"{package}/"):
                folder = token.rstrip("/") if token.endswith("/") else token.rsplit("/", 1)[0]
                if token.endswith(".py"):
                    named.add(token)
            elif folder is not None and token.endswith(".py"):
                named.add(f"{folder}/{token}" if "/" not in token else f"{package}/{token}")
    return named


PACKAGES = ("coda_edu", "coda_course")


def test_every_module_has_its_line_in_architecture_md():
    modules = {p.relative_to(REPO).as_posix() for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    named = documented_modules((REPO / "docs" / "architecture.md").read_text(encoding="utf-8"))
    assert sorted(modules - named) == [], "modules without a line in docs/architecture.md's table"
    assert sorted(named - modules) == [], "lines in docs/architecture.md's table for modules that do not exist"


def test_the_rule_reads_full_paths_and_bare_names_of_the_same_folder():
    text = (
        "| `coda_edu/data/acdc.py`, `la.py` | x |\n| `coda_edu/cli.py` | `other.py` in the text |\n"
        "| `coda_edu/presets/` | `quick.yaml` |\n| `coda_course/static.py`, `plotly_figures.py` | x |\n"
    )
    assert documented_modules(text) == {
        "coda_edu/data/acdc.py",
        "coda_edu/data/la.py",
        "coda_edu/cli.py",
        "coda_course/static.py",
        "coda_course/plotly_figures.py",
    }


def imported_modules(path) -> set[str]:
    """Absolute names of the modules a file of coda_edu/ or coda_course/ imports (relative imports resolved)."""
    import ast

    package = path.relative_to(REPO).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_papers_method_never_imports_the_options_beyond_it():
    """coda_edu/method/ is what a student reads for Co-DA; coda_edu/beyond/ builds on it, never the reverse."""
    offenders = {
        p.relative_to(REPO).as_posix(): sorted(n for n in imported_modules(p) if n.startswith("coda_edu.beyond"))
        for p in (REPO / "coda_edu" / "method").glob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    beyond = set().union(*(imported_modules(p) for p in (REPO / "coda_edu" / "beyond").glob("*.py")))
    assert "coda_edu.method.alignment" in beyond  # the rule reads relative imports (..method.alignment)


def test_the_import_reader_resolves_relative_imports():
    source = REPO / "coda_edu" / "method" / "coda.py"
    names = imported_modules(source)
    assert "coda_edu.registry.METHODS" in names and "coda_edu.method.cps.CrossPseudoSupervision" in names


def test_the_library_never_imports_the_course_package():
    """coda_course builds on coda_edu; a coda_edu module that imports coda_course (even inside a
    function) would make the library depend on the course tools."""
    offenders = {
        p.relative_to(REPO).as_posix(): sorted(n for n in imported_modules(p) if n.split(".")[0] == "coda_course")
        for p in (REPO / "coda_edu").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    course = set().union(*(imported_modules(p) for p in (REPO / "coda_course").glob("*.py")))
    assert "coda_edu.method.alignment" in course and "coda_course.static" in course  # the rule sees both packages
