"""Run the notebook series with papermill: ``coda-edu notebooks run | sweep | sync``.

Each notebook has one source of truth, ``notebooks/NN_name.py`` (jupytext percent
format, no outputs), paired with ``notebooks/NN_name.ipynb`` so that JupyterLab opens it
with a double click. ``sync`` rewrites the ``.ipynb`` files from the ``.py`` sources;
:func:`out_of_sync` is what the tests (and so CI) check: it compares the cells (type,
source, tags), not the outputs, so executing a notebook in place does not break it.

Running in place leaves ``git status`` clean:

- the ``.py`` header carries jupytext metadata filters (:data:`JUPYTEXT_METADATA`), so
  JupyterLab's jupytext saves write no version numbers and no cell metadata but tags;
- committed ``.ipynb`` files hold no outputs. ``coda-edu notebooks setup`` configures
  JupyterLab (a pre-save hook, :func:`jupyter_pre_save`, in this environment's Jupyter
  config) to save the series' notebooks without outputs and run metadata, byte for byte
  as committed, and git (the clean filter that ``.gitattributes`` names, running
  ``coda-edu notebooks strip``, like nbstripout) so that ``git diff`` and ``git add``
  ignore the outputs of a notebook executed in place by other means (papermill);
- ``coda-edu notebooks run`` never writes into the notebook folder: executed copies and
  their runs go to ``--out``;
- runs that notebooks executed in place train go below ``runs/`` next to them
  (``notebooks/runs/``, ignored).

Papermill only warns about a parameter the notebook does not have; here an unknown
name, or a value of the wrong type, is an error before anything runs. A failing cell
is reported with the notebook's name, the cell's number and its first line.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

import yaml

from coda_edu.errors import CodaEduError, excerpt
from coda_edu.io import load_yaml

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SERIES = (
    "01_class_imbalance",
    "02_distribution_alignment",
    "03_pseudo_label_filtering",
    "04_full_experiment",
    "05_compare_runs",
)


class NotebookError(CodaEduError):
    """A notebook that cannot be run (unknown parameter, failing cell, missing file)."""


# --------------------------------------------------------------------------- sources
def notebook_dir() -> Path:
    if not NOTEBOOK_DIR.is_dir():
        raise NotebookError(
            f"notebook folder '{NOTEBOOK_DIR}' not found (the notebooks ship with the repository, "
            f"not with the installed package)"
        )
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


# The jupytext metadata of every pair. The filters keep JupyterLab's saves of the .py
# stable: no jupytext/format version in the header, no cell metadata but tags.
JUPYTEXT_METADATA = {
    "cell_metadata_filter": "tags,-all",
    "formats": "ipynb,py:percent",
    "notebook_metadata_filter": "-jupytext.text_representation.jupytext_version,"
    "-jupytext.text_representation.format_version",
}
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
EXECUTION_TAGS = ("injected-parameters",)  # cells papermill adds when it runs a notebook


def _cells_signature(nb) -> list[tuple[str, str, tuple]]:
    return [
        (c.cell_type, c.source.strip(), tuple(sorted(c.get("metadata", {}).get("tags", []))))
        for c in nb.cells
        if not set(c.get("metadata", {}).get("tags", [])) & set(EXECUTION_TAGS)
    ]


def _cell_id(name: str, index: int) -> str:
    import hashlib

    return hashlib.sha1(f"{name}:{index}".encode()).hexdigest()[:8]


def strip_notebook(nb, name: str = "notebook"):
    """A copy of ``nb`` as it is committed: no outputs, execution counts, injected parameters,
    run metadata (papermill, timings, widget state, language_info) or cell metadata but tags."""
    import copy

    import nbformat

    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if not set(c.get("metadata", {}).get("tags", [])) & set(EXECUTION_TAGS)]
    for i, cell in enumerate(nb.cells):
        tags = list(cell.get("metadata", {}).get("tags", []))
        cell["metadata"] = nbformat.NotebookNode({"tags": tags} if tags else {})
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        if not cell.get("id"):
            cell["id"] = _cell_id(name, i)
    jupytext_meta = nb.metadata.get("jupytext", {})
    nb.metadata = nbformat.NotebookNode(
        {
            "jupytext": {k: jupytext_meta[k] for k in JUPYTEXT_METADATA if k in jupytext_meta},
            "kernelspec": nb.metadata.get("kernelspec", KERNELSPEC),
        }
    )
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def ipynb_text(nb) -> str:
    """The committed text of a notebook (nbformat's layout, trailing newline)."""
    import nbformat

    return nbformat.writes(nb) + "\n"


def strip_text(text: str, name: str = "notebook") -> str:
    """``strip_notebook`` on the text of an ``.ipynb`` (the git clean filter)."""
    import nbformat

    return ipynb_text(strip_notebook(nbformat.reads(text, as_version=4), name))


def _read_source(name: str):
    import jupytext

    nb = jupytext.read(source_path(name))
    for i, cell in enumerate(nb.cells):
        cell["id"] = _cell_id(name, i)
    return nb


def canonical_source(nb, name: str) -> str:
    """The ``.py`` text that jupytext writes for ``nb`` from its committed form (what JupyterLab
    writes when it saves the pair): the sources are kept in this form so that a save changes nothing."""
    import jupytext

    nb = strip_notebook(nb, name)
    nb.metadata["jupytext"] = dict(JUPYTEXT_METADATA)
    return jupytext.writes(nb, fmt="py:percent")


def out_of_sync(names: Optional[Iterable[str]] = None) -> list[str]:
    """Notebooks whose ``.ipynb`` cells (type, text, tags; outputs ignored) differ from the ``.py``
    source, or whose ``.py`` is not in the form JupyterLab's jupytext saves write (metadata
    filters in the header, blank lines between cells)."""
    import nbformat

    stale = []
    for name in resolve_names(names):
        src, pair = source_path(name), paired_path(name)
        if not src.is_file() or not pair.is_file():
            stale.append(name)
            continue
        from_py = _read_source(name)
        from_ipynb = nbformat.read(pair, as_version=4)
        if src.read_text() != canonical_source(from_py, name) or _cells_signature(from_py) != _cells_signature(
            from_ipynb
        ):
            stale.append(name)
    return stale


def with_outputs(names: Optional[Iterable[str]] = None, committed: bool = True) -> list[str]:
    """Notebooks whose ``.ipynb`` holds outputs or run metadata: in git's index when ``committed``
    (and the folder is a git checkout), else on disk."""
    import subprocess

    found = []
    for name in resolve_names(names):
        pair = paired_path(name)
        text = None
        if committed:
            done = subprocess.run(["git", "show", f":./{pair.name}"], cwd=pair.parent, capture_output=True, text=True)
            text = done.stdout if done.returncode == 0 else None
        if text is None and pair.is_file():
            text = pair.read_text()
        if text is not None and strip_text(text, name) != text:
            found.append(name)
    return found


def sync(names: Optional[Iterable[str]] = None) -> list[str]:
    """Rewrite each ``.ipynb`` from its ``.py`` source (no outputs), and the ``.py`` itself in the
    form that JupyterLab's saves write (:func:`canonical_source`); returns the names written."""
    written = []
    for name in resolve_names(names):
        nb = _read_source(name)
        text = canonical_source(nb, name)
        if source_path(name).read_text() != text:
            source_path(name).write_text(text)
        nb.metadata.setdefault("jupytext", {}).update(JUPYTEXT_METADATA)
        nb.metadata.setdefault("kernelspec", dict(KERNELSPEC))
        text = ipynb_text(strip_notebook(nb, name))
        pair = paired_path(name)
        if not pair.is_file() or pair.read_text() != text:
            pair.write_text(text)
        written.append(name)
    return written


GIT_FILTER = "coda-edu-notebooks"
PRE_SAVE_HOOK = "coda_course.notebooks.jupyter_pre_save"


def jupyter_pre_save(model: dict, path: str = "", contents_manager=None, **kwargs) -> None:
    """Jupyter server pre-save hook: a notebook of the series is saved as committed (no outputs,
    execution counts or run metadata); the open notebook keeps its outputs until it is closed."""
    if model.get("type") != "notebook" or Path(path).stem not in SERIES:
        return
    import nbformat

    stripped = strip_notebook(nbformat.from_dict(model["content"]), Path(path).stem)
    model["content"] = stripped


def jupyter_config_file() -> Path:
    import sys

    return Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "coda-edu-notebooks.json"


def install_jupyter_hook() -> Path:
    """Register :func:`jupyter_pre_save` in this environment's Jupyter server config."""
    import json

    path = jupyter_config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ContentsManager": {"pre_save_hook": PRE_SAVE_HOOK}}, indent=2) + "\n")
    return path


def install_git_filter(repo: Optional[Path] = None) -> str:
    """Configure the clean filter that ``.gitattributes`` names for ``notebooks/*.ipynb`` in this
    checkout's ``.git/config``: git then sees executed notebooks without their outputs."""
    import shlex
    import subprocess
    import sys

    repo = repo or notebook_dir().parent
    command = f"{shlex.quote(sys.executable)} -m coda_course.notebooks strip"
    for key, value in ((f"filter.{GIT_FILTER}.clean", command), (f"filter.{GIT_FILTER}.smudge", "cat")):
        done = subprocess.run(["git", "config", key, value], cwd=repo, capture_output=True, text=True)
        if done.returncode != 0:
            raise NotebookError(f"git config {key} failed in {repo}: {done.stderr.strip()}")
    return command


# --------------------------------------------------------------------------- parameters
def notebook_parameters(path: Path) -> dict[str, dict]:
    """Parameters of the cell tagged ``parameters``: name -> {default, type}."""
    import papermill

    info = papermill.inspect_notebook(str(path))
    return {
        name: {"default": p.get("default"), "type": p.get("inferred_type_name", "None")} for name, p in info.items()
    }


class Typed(str):
    """A ``-p NAME VALUE`` (or ``--grid``) value as typed on the command line. :func:`check_parameters`
    reads it as the type the notebook declares: a ``str`` parameter gets the text exactly as typed
    (``runs/my run #1``, ``yes``, ``~``, ``0123``), an ``int`` a decimal integer, a ``bool``
    true/false/yes/no/on/off/1/0, a ``float`` a number, a ``list`` a YAML flow list ``[a, b]``;
    ``None`` (or ``null``) sets an optional parameter to None."""


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _from_text(name: str, key: str, text: str, declared: str, type_name: str, optional: bool) -> Any:
    """The value of a :class:`Typed` for a parameter declared as ``declared``; a NotebookError otherwise."""
    if optional and text in ("None", "null"):
        return None
    wrong = NotebookError(f"notebook {name}: parameter '{key}' must be {type_name}, got {excerpt(text)}")
    if declared == "str":
        return text
    if declared == "bool":
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise wrong
    if declared == "int":
        if re.fullmatch(r"[+-]?[0-9]+", text.strip()):
            return int(text)
        raise wrong
    if declared == "float":
        try:
            number = float(text)
        except ValueError:
            raise wrong from None
        if not math.isfinite(number):
            raise wrong
        return number
    try:  # a list, or a parameter whose type papermill could not tell
        value = load_yaml(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise NotebookError(f"notebook {name}: parameter '{key}': {problem}") from None
    if declared == "list" and not isinstance(value, list):
        raise wrong
    return value


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
        if isinstance(value, Typed):
            value = _from_text(name, key, str(value), declared, known[key]["type"], optional)
        if value is None and optional:
            checked[key] = value
            continue
        if check is not None and not check(value):
            if declared == "str":
                value = str(value)
            else:
                raise NotebookError(
                    f"notebook {name}: parameter '{key}' must be {known[key]['type']}, got {excerpt(value)}"
                )
        if declared == "float" and isinstance(value, int):
            value = float(value)
        checked[key] = value
    return checked


# --------------------------------------------------------------------------- running
def execute(name: str, out_dir: Path, parameters: dict[str, Any], log=print) -> Path:
    """Execute one notebook with papermill into ``out_dir``; one-line error naming the failing cell.

    The executed notebook holds the saved widget state (nbclient's ``store_widget_state``),
    which the course site (``make book``) draws without a kernel."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    src = paired_path(name)
    if not src.is_file():
        raise NotebookError(f"notebook '{src}' does not exist (run 'coda-edu notebooks sync')")
    params = check_parameters(name, src, parameters)
    output = out_dir / f"{name}.ipynb"
    if output.resolve() == src.resolve() or out_dir.resolve() == src.parent.resolve():
        raise NotebookError(
            f"--out {out_dir} is the notebook folder: executed notebooks and their runs go to "
            f"another folder (e.g. runs/notebooks), so the sources stay as committed"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log(f"[notebooks] {name} {params if params else ''}".rstrip())
    try:
        # store_widget_state: the executed copy keeps the widgets' state in its metadata
        # (application/vnd.jupyter.widget-state+json), so a saved or published copy draws
        # the controls and the explorers' figures instead of a bare "VBox(children=...)".
        papermill.execute_notebook(
            str(src),
            str(output),
            parameters=params,
            progress_bar=False,
            cwd=str(out_dir),
            kernel_name="python3",
            store_widget_state=True,
        )
    except PapermillExecutionError as exc:
        first_line = next((line for line in exc.source.splitlines() if line.strip()), "")
        raise NotebookError(
            f"notebook {name} failed in cell {exc.cell_index} ('{first_line[:60]}'): "
            f"{exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''} "
            f"(executed notebook: {output})"
        ) from None
    log(f"[notebooks] {name} done in {time.perf_counter() - start:.0f} s -> {output}")
    return output


def run_series(
    names: Optional[list[str]], out_dir: Path, parameters: dict[str, Any], quick: bool, log=print
) -> dict[str, float]:
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
    """``["method=cps,coda", "labeled=2,4"]`` -> the list of all combinations (values as :class:`Typed`)."""
    axes = []
    for item in grid:
        if "=" not in item:
            raise NotebookError(f"--grid {excerpt(item)} must look like NAME=V1,V2,...")
        key, values = item.split("=", 1)
        axes.append([(key.strip(), Typed(v.strip())) for v in values.split(",") if v.strip()])
    return [dict(combo) for combo in itertools.product(*axes)]


def grid_tag(combo: dict[str, Any]) -> str:
    """The folder name of a grid point, ``method_cps-seed0``: letters, digits and ``._=+-`` only (any other
    character becomes ``_``), so a value such as ``/../../X`` can never lead out of ``--out``."""
    tag = "-".join(f"{k}{v}" for k, v in combo.items())
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", tag).lstrip(".") or "_"


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def sweep_run(out_dir: Path, params: dict[str, Any], tag: str, device: Optional[str] = None) -> str:
    """One grid point: ``04_full_experiment`` executed into ``out_dir/sweep/04_full_experiment-TAG.ipynb``
    (pinned to ``device`` when given); returns that path."""
    if device is not None:
        params = {**params, "device": device}
    work = out_dir / "sweep" / tag  # a folder of its own: runs on several devices execute at once
    executed = execute("04_full_experiment", work, params)
    final = out_dir / "sweep" / f"04_full_experiment-{tag}.ipynb"
    executed.replace(final)
    with contextlib.suppress(OSError):
        work.rmdir()  # kept when the notebook wrote files next to itself
    return str(final)


def sweep(
    grid: list[str],
    out_dir: Path,
    parameters: dict[str, Any],
    quick: bool,
    log=print,
    devices: Optional[list[str]] = None,
) -> tuple[Optional[Path], list[str]]:
    """Run ``04_full_experiment`` for every grid point, then ``05_compare_runs`` over the runs that
    succeeded. With ``devices`` the grid points are queued over the devices, one run per device at
    a time (:mod:`coda_course.sweep_devices`). Returns the comparison notebook (None when no run
    succeeded) and one line per failed run."""
    from .sweep_devices import Job, report, run_queued

    runs_dir = (out_dir / "runs").resolve()
    combos = expand_grid(grid)
    if devices and "device" in parameters:
        raise NotebookError("give the device with --devices or with -p device, not both")
    log(f"[notebooks] sweep over {len(combos)} runs -> {runs_dir}")
    jobs, tags = [], {}
    for combo in combos:
        params = {**parameters, **combo}
        if quick:
            params.setdefault("quick", True)
        tag = grid_tag(combo)
        if tag in tags:
            raise NotebookError(
                f"grid points {excerpt(tags[tag])} and {excerpt(dict(combo))} would share the folder '{tag}': "
                f"choose values that differ in letters or digits"
            )
        tags[tag] = dict(combo)
        if not (_inside(runs_dir / tag, out_dir) and _inside(out_dir / "sweep" / tag, out_dir)):  # the last guard
            raise NotebookError(f"grid point {excerpt(dict(combo))} would write outside '{out_dir}'")
        params["run_dir"] = str(runs_dir / tag)
        check_parameters("04_full_experiment", paired_path("04_full_experiment"), params)  # before anything runs
        jobs.append(Job(tag, sweep_run, (out_dir, params, tag)))
    outcomes = run_queued(jobs, devices, log=log)
    failures: list[str] = []
    report(outcomes, failures.append)
    if not any(o.ok for o in outcomes):
        return None, failures
    compare = {"runs_dir": str(runs_dir)}
    if quick:
        compare["quick"] = True
    return execute("05_compare_runs", out_dir, compare, log=log), failures


# --------------------------------------------------------------------------- CLI
def add_cli(sub) -> None:
    p = sub.add_parser("notebooks", help="execute the notebook series (papermill), sweep experiments, sync pairs")
    nb_sub = p.add_subparsers(dest="nb_command", metavar="ACTION", parser_class=type(p))
    run = nb_sub.add_parser("run", help="execute notebooks into --out")
    run.add_argument("names", nargs="*", help="notebooks to run (names or numbers; default: all five)")
    run.add_argument("--quick", action="store_true", help="CI size (quick=True)")
    run.add_argument(
        "--out", default="runs/notebooks", help="folder for the executed notebooks (default: runs/notebooks)"
    )
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a notebook parameter (repeatable); unknown names are errors",
    )
    sw = nb_sub.add_parser("sweep", help="run 04_full_experiment over a grid, then 05_compare_runs")
    sw.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a parameter axis, e.g. --grid method=cps,coda --grid labeled=2,4 --grid seed=0,1",
    )
    sw.add_argument("--quick", action="store_true")
    sw.add_argument("--out", default="runs/sweep")
    sw.add_argument(
        "--devices",
        metavar="D1,D2,...",
        help="run the grid points over these devices, one run per device at a time "
        "(e.g. cuda:0,cuda:1; cpu,cpu runs two CPU runs at once); default: one after the other here",
    )
    sw.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    nb_sub.add_parser("sync", help="rewrite the .ipynb files from their .py sources")
    nb_sub.add_parser("check", help="exit 1 if a .ipynb is out of sync with its .py source, or committed with outputs")
    st = nb_sub.add_parser(
        "strip",
        help="remove outputs and run metadata from .ipynb files (no file: stdin to stdout, the git clean filter)",
    )
    st.add_argument("files", nargs="*")
    nb_sub.add_parser(
        "setup",
        help="make running in place safe: JupyterLab saves the series without outputs, "
        "git ignores outputs of notebooks executed in place (clean filter)",
    )
    p.set_defaults(handler=handle)


def handle(args) -> int:
    action = getattr(args, "nb_command", None)
    if action is None:
        raise NotebookError(
            "usage: coda-edu notebooks run|sweep|sync|check|strip|setup ... (see coda-edu notebooks --help)"
        )
    if action == "sync":
        for name in sync():
            print(f"wrote {paired_path(name)}")
        return 0
    if action == "check":
        stale, dirty = out_of_sync(), with_outputs()
        if stale:
            print(f"out of sync: {', '.join(stale)} (run 'coda-edu notebooks sync')")
        if dirty:
            print(
                f"committed with outputs or run metadata: {', '.join(dirty)} (run 'coda-edu notebooks sync' and "
                f"commit; 'coda-edu notebooks setup' keeps executed notebooks out of git)"
            )
        if stale or dirty:
            return 1
        print("all notebooks in sync")
        return 0
    if action == "strip":
        return strip_main(args.files)
    if action == "setup":
        print(f"JupyterLab pre-save hook: {install_jupyter_hook()}")
        print(f"git clean filter '{GIT_FILTER}': {install_git_filter()}")
        return 0
    params = {name: Typed(value) for name, value in args.parameter}
    out = Path(args.out)
    if action == "run":
        timings = run_series(args.names, out, params, args.quick)
        for name, seconds in timings.items():
            print(f"{name:<28} {seconds:7.1f} s")
        return 0
    if action == "sweep":
        if not args.grid:
            raise NotebookError("sweep needs at least one --grid NAME=V1,V2")
        devices = None
        if args.devices:
            from .sweep_devices import parse_devices

            devices = parse_devices(args.devices)
        comparison, failures = sweep(args.grid, out, params, args.quick, devices=devices)
        if comparison is not None:
            print(f"comparison: {comparison}")
        for line in failures:
            print(line)
        return 1 if failures else 0
    raise NotebookError("usage: coda-edu notebooks run|sweep|sync|check")


def strip_main(files: list[str]) -> int:
    """``strip FILE...`` rewrites the files; ``strip`` alone filters stdin to stdout (for git)."""
    import sys

    if not files:
        text = sys.stdin.read()
        try:
            sys.stdout.write(strip_text(text))
        except Exception:  # not a notebook git can hand us: pass it through unchanged
            sys.stdout.write(text)
        return 0
    for file in files:
        path = Path(file)
        stripped = strip_text(path.read_text(), path.stem)
        if stripped != path.read_text():
            path.write_text(stripped)
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["strip"]:
        raise SystemExit(strip_main(sys.argv[2:]))
    raise SystemExit("usage: python -m coda_course.notebooks strip [FILE...]")
