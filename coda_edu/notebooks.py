"""Run the notebook series with papermill: ``coda-edu notebooks run | sweep | sync``.

Each notebook has one source of truth, ``notebooks/NN_name.py`` (jupytext percent
format, no outputs), paired with ``notebooks/NN_name.ipynb`` so that JupyterLab opens it
with a double click. ``sync`` rewrites the ``.ipynb`` files from the ``.py`` sources;
:func:`out_of_sync` is what the tests (and so CI) check.

Papermill only warns about a parameter the notebook does not have; here an unknown
name, or a value of the wrong type, is an error before anything runs. A failing cell
is reported with the notebook's name, the cell's number and its first line.
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from .errors import CodaEduError

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SERIES = ("01_class_imbalance", "02_distribution_alignment", "03_pseudo_label_filtering",
          "04_full_experiment", "05_compare_runs")


class NotebookError(CodaEduError):
    """A notebook that cannot be run (unknown parameter, failing cell, missing file)."""


# --------------------------------------------------------------------------- sources
def notebook_dir() -> Path:
    if not NOTEBOOK_DIR.is_dir():
        raise NotebookError(f"notebook folder '{NOTEBOOK_DIR}' not found (the notebooks ship with the repository, "
                            f"not with the installed package)")
    return NOTEBOOK_DIR


def source_path(name: str) -> Path:
    return notebook_dir() / f"{name}.py"


def paired_path(name: str) -> Path:
    return notebook_dir() / f"{name}.ipynb"


def resolve_names(names: Optional[Iterable[str]]) -> list[str]:
    """Notebook names from full names or number prefixes (``02`` -> ``02_distribution_alignment``)."""
    if not names:
        return list(SERIES)
    out = []
    for name in names:
        match = [s for s in SERIES if s == name or s.startswith(f"{name}_") or s.split("_", 1)[0] == name]
        if not match:
            raise NotebookError(f"unknown notebook '{name}' (choose from {', '.join(SERIES)})")
        out.append(match[0])
    return out


def _cells_signature(nb) -> list[tuple[str, str, tuple]]:
    return [(c.cell_type, c.source.strip(), tuple(sorted(c.get("metadata", {}).get("tags", [])))) for c in nb.cells]


def out_of_sync(names: Optional[Iterable[str]] = None) -> list[str]:
    """Notebooks whose ``.ipynb`` differs from its ``.py`` source (cells, their text and tags) or has outputs."""
    import jupytext
    import nbformat

    stale = []
    for name in resolve_names(names):
        src, pair = source_path(name), paired_path(name)
        if not src.is_file() or not pair.is_file():
            stale.append(name)
            continue
        from_py = jupytext.read(src)
        from_ipynb = nbformat.read(pair, as_version=4)
        has_outputs = any(c.get("outputs") for c in from_ipynb.cells if c.cell_type == "code")
        if has_outputs or _cells_signature(from_py) != _cells_signature(from_ipynb):
            stale.append(name)
    return stale


def sync(names: Optional[Iterable[str]] = None) -> list[str]:
    """Rewrite each ``.ipynb`` from its ``.py`` source (outputs stripped); returns the names written."""
    import jupytext

    written = []
    for name in resolve_names(names):
        nb = jupytext.read(source_path(name))
        nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
        nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        jupytext.write(nb, paired_path(name))
        written.append(name)
    return written


# --------------------------------------------------------------------------- parameters
def notebook_parameters(path: Path) -> dict[str, dict]:
    """Parameters of the cell tagged ``parameters``: name -> {default, type}."""
    import papermill

    info = papermill.inspect_notebook(str(path))
    return {name: {"default": p.get("default"), "type": p.get("inferred_type_name", "None")} for name, p in info.items()}


def parse_value(raw: str) -> Any:
    """A ``-p NAME VALUE`` value read as YAML: ``true``, ``3``, ``0.5``, ``[a, b]``, ``null``; else the string."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


_TYPE_CHECKS = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, list),
}


def check_parameters(name: str, path: Path, given: dict[str, Any]) -> dict[str, Any]:
    """Unknown names and wrong types are errors (papermill would only warn)."""
    known = notebook_parameters(path)
    checked = {}
    for key, value in given.items():
        if key not in known:
            raise NotebookError(f"notebook {name} has no parameter '{key}' (it has: {', '.join(known)})")
        declared = re.sub(r"^Optional\[(.*)\]$", r"\1", known[key]["type"] or "")
        declared = declared.split("[")[0].lower()
        optional = "Optional" in (known[key]["type"] or "") or "None" in (known[key]["type"] or "")
        check = _TYPE_CHECKS.get(declared)
        if value is None and optional:
            checked[key] = value
            continue
        if check is not None and not check(value):
            if declared == "str":
                value = str(value)
            else:
                raise NotebookError(f"notebook {name}: parameter '{key}' must be {known[key]['type']}, got {value!r}")
        if declared == "float" and isinstance(value, int):
            value = float(value)
        checked[key] = value
    return checked


# --------------------------------------------------------------------------- running
def execute(name: str, out_dir: Path, parameters: dict[str, Any], log=print) -> Path:
    """Execute one notebook with papermill into ``out_dir``; one-line error naming the failing cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    src = paired_path(name)
    if not src.is_file():
        raise NotebookError(f"notebook '{src}' does not exist (run 'coda-edu notebooks sync')")
    params = check_parameters(name, src, parameters)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{name}.ipynb"
    start = time.perf_counter()
    log(f"[notebooks] {name} {params if params else ''}".rstrip())
    try:
        papermill.execute_notebook(str(src), str(output), parameters=params, progress_bar=False,
                                   cwd=str(out_dir), kernel_name="python3")
    except PapermillExecutionError as exc:
        first_line = next((line for line in exc.source.splitlines() if line.strip()), "")
        raise NotebookError(f"notebook {name} failed in cell {exc.cell_index} ('{first_line[:60]}'): "
                            f"{exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''} "
                            f"(executed notebook: {output})") from None
    log(f"[notebooks] {name} done in {time.perf_counter() - start:.0f} s -> {output}")
    return output


def run_series(names: Optional[list[str]], out_dir: Path, parameters: dict[str, Any], quick: bool,
               log=print) -> dict[str, float]:
    """Execute notebooks in order; ``quick`` sets ``quick=True``. Returns seconds per notebook.

    Every notebook gets the parameters it declares; a parameter that no selected notebook
    declares, or a value of the wrong type, stops the run before anything executes.
    """
    names = resolve_names(names)
    runs_dir = (out_dir / "runs").resolve()
    declared = {name: notebook_parameters(paired_path(name)) for name in names}
    for key in parameters:
        if not any(key in known for known in declared.values()):
            if len(names) == 1:
                check_parameters(names[0], paired_path(names[0]), {key: parameters[key]})
            raise NotebookError(f"no notebook of {', '.join(names)} has a parameter '{key}'")
    plan = {}
    for name in names:
        params = {**({"quick": True} if quick else {}), **parameters}
        # 05 compares the experiments of 04 only: the illustration runs of 01-03 go to runs/scratch
        if name == "04_full_experiment":
            params.setdefault("run_dir", str(runs_dir / "experiments" / "04_full_experiment"))
        if name == "05_compare_runs":
            params.setdefault("runs_dir", str(runs_dir / "experiments"))
        shared = {k: v for k, v in params.items() if k in declared[name]}
        plan[name] = check_parameters(name, paired_path(name), shared)
    timings = {}
    for name, params in plan.items():
        start = time.perf_counter()
        execute(name, out_dir, params, log=log)
        timings[name] = time.perf_counter() - start
    return timings


def expand_grid(grid: list[str]) -> list[dict[str, Any]]:
    """``["method=cps,coda", "labeled=2,4"]`` -> the list of all combinations."""
    axes = []
    for item in grid:
        if "=" not in item:
            raise NotebookError(f"--grid '{item}' must look like NAME=V1,V2,...")
        key, values = item.split("=", 1)
        axes.append([(key.strip(), parse_value(v.strip())) for v in values.split(",") if v.strip()])
    return [dict(combo) for combo in itertools.product(*axes)]


def sweep(grid: list[str], out_dir: Path, parameters: dict[str, Any], quick: bool, log=print) -> Path:
    """Run ``04_full_experiment`` for every grid point, then ``05_compare_runs`` over the results."""
    runs_dir = (out_dir / "runs").resolve()
    combos = expand_grid(grid)
    log(f"[notebooks] sweep over {len(combos)} runs -> {runs_dir}")
    for combo in combos:
        params = {**parameters, **combo}
        if quick:
            params.setdefault("quick", True)
        tag = "-".join(f"{k}{v}" for k, v in combo.items())
        params["run_dir"] = str(runs_dir / tag)
        execute("04_full_experiment", out_dir / "sweep", params, log=log)
        (out_dir / "sweep" / "04_full_experiment.ipynb").rename(out_dir / "sweep" / f"04_full_experiment-{tag}.ipynb")
    compare = {"runs_dir": str(runs_dir)}
    if quick:
        compare["quick"] = True
    return execute("05_compare_runs", out_dir, compare, log=log)


# --------------------------------------------------------------------------- CLI
def add_cli(sub) -> None:
    p = sub.add_parser("notebooks", help="execute the notebook series (papermill), sweep experiments, sync pairs")
    nb_sub = p.add_subparsers(dest="nb_command", metavar="ACTION", parser_class=type(p))
    run = nb_sub.add_parser("run", help="execute notebooks into --out")
    run.add_argument("names", nargs="*", help="notebooks to run (names or numbers; default: all five)")
    run.add_argument("--quick", action="store_true", help="CI size (quick=True)")
    run.add_argument("--out", default="runs/notebooks", help="folder for the executed notebooks (default: runs/notebooks)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set a notebook parameter (repeatable); unknown names are errors")
    sw = nb_sub.add_parser("sweep", help="run 04_full_experiment over a grid, then 05_compare_runs")
    sw.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                    help="a parameter axis, e.g. --grid method=cps,coda --grid labeled=2,4 --grid seed=0,1")
    sw.add_argument("--quick", action="store_true")
    sw.add_argument("--out", default="runs/sweep")
    sw.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    nb_sub.add_parser("sync", help="rewrite the .ipynb files from their .py sources")
    nb_sub.add_parser("check", help="exit 1 if a .ipynb is out of sync with its .py source")
    p.set_defaults(handler=handle)


def handle(args) -> int:
    action = getattr(args, "nb_command", None)
    if action == "sync":
        for name in sync():
            print(f"wrote {paired_path(name)}")
        return 0
    if action == "check":
        stale = out_of_sync()
        if stale:
            print(f"out of sync: {', '.join(stale)} (run 'coda-edu notebooks sync')")
            return 1
        print("all notebooks in sync")
        return 0
    params = {name: parse_value(value) for name, value in args.parameter}
    out = Path(args.out)
    if action == "run":
        timings = run_series(args.names, out, params, args.quick)
        for name, seconds in timings.items():
            print(f"{name:<28} {seconds:7.1f} s")
        return 0
    if action == "sweep":
        if not args.grid:
            raise NotebookError("sweep needs at least one --grid NAME=V1,V2")
        print(f"comparison: {sweep(args.grid, out, params, args.quick)}")
        return 0
    raise NotebookError("usage: coda-edu notebooks run|sweep|sync|check")
