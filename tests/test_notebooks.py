"""The notebook series: paired sources in sync, parameters checked, every notebook executed at the
quick size, and what the notebooks say about their outputs checked on those executions."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from coda_course import notebooks
from coda_course.notebooks import NotebookError
from coda_course.static import MIME
from tests.conftest import SMOKE_PRESET, cli_command, real_data_root

MAX_BYTES = 5 * 1024 * 1024


def test_every_notebook_has_a_paired_source_in_sync():
    for name in notebooks.SERIES:
        assert notebooks.source_path(name).is_file() and notebooks.paired_path(name).is_file(), name
    assert notebooks.out_of_sync() == []


def test_sync_check_detects_an_edited_source(tmp_path, monkeypatch):
    for name in ("01_class_imbalance",):
        shutil.copy(notebooks.source_path(name), tmp_path)
        shutil.copy(notebooks.paired_path(name), tmp_path)
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", tmp_path)
    assert notebooks.out_of_sync(["01"]) == []
    src = tmp_path / "01_class_imbalance.py"
    src.write_text(src.read_text().replace("seed: int = 0", "seed: int = 1"))
    assert notebooks.out_of_sync(["01"]) == ["01_class_imbalance"]
    notebooks.sync(["01"])
    assert notebooks.out_of_sync(["01"]) == []


def test_notebook_structure():
    for name in notebooks.SERIES:
        nb = nbformat.read(notebooks.paired_path(name), as_version=4)
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        params = notebooks.notebook_parameters(notebooks.paired_path(name))
        assigned = [line for line in nb.cells[tagged[0]].source.splitlines() if line and not line.startswith("#")]
        assert len(params) == len(assigned), f"{name}: papermill parses {len(params)} of {len(assigned)} parameters"
        for required in ("quick", "device", "seed", "solutions"):
            assert required in params, (name, required)
        assert params["quick"]["type"] == "bool" and params["device"]["default"] == '"auto"'
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "Learning objectives" in text and "## Recap" in text and "## Exercise" in text, name
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "exercises.check(" in code and '"cuda"' not in code, name


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["-p", "alfa", "1"], "has no parameter 'alfa'"),
        (["-p", "quick", "maybe"], "parameter 'quick' must be bool"),
        (["-p", "seed", "1.5"], "parameter 'seed' must be int"),
    ],
)
def test_bad_parameters_are_errors_before_running(tmp_path, args, fragment):
    done = subprocess.run(
        cli_command() + ["notebooks", "run", "01", "--out", str(tmp_path)] + args,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.ipynb"))


def test_failing_cell_is_named(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("quick: bool = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("# divide\nresult = 1 / 0"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "09_broken.ipynb")
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", tmp_path)
    with pytest.raises(NotebookError) as info:
        notebooks.execute("09_broken", tmp_path / "out", {"quick": True}, log=lambda s: None)
    message = str(info.value)
    assert "notebook 09_broken failed in cell" in message and "# divide" in message and "ZeroDivisionError" in message


def outputs_of(path):
    nb = json.loads(path.read_text())
    kinds = [o.get("output_type") for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    images = sum(
        "image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
    )
    text = "".join(
        "".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
    )
    return kinds, images, text


@pytest.mark.slow
@pytest.mark.parametrize("name", notebooks.SERIES)
def test_quick_notebooks_execute_and_show_figures(quick_series, name):
    out, _ = quick_series
    path = out / f"{name}.ipynb"
    assert path.is_file()
    assert path.stat().st_size < MAX_BYTES
    kinds, images, text = outputs_of(path)
    assert "error" not in kinds
    assert images >= 2, f"{name} shows {images} static figures"
    assert "✔ correct" in text  # the exercise, filled in by solutions=True, passes its check
    # every progress bar leaves one output, its final line (coda_edu.progress.DisplayLine), not one per refresh
    assert "%|" not in text, f"{name}: a progress bar was written as a stream"
    bars = progress_lines(path)
    assert all(re.search(r"100%\|", line) for line in bars), f"{name}: a progress bar did not end: {bars}"


def progress_lines(path):
    nb = json.loads(path.read_text())
    return [
        "".join(o["data"]["text/plain"])
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "display_data" and "%|" in "".join(o.get("data", {}).get("text/plain", ""))
    ]


# --------------------------------------------------------------------------- claims at the quick size
# What each notebook prints as "what this run shows" must hold at the quick size: the quick size
# exists to show the same phenomena as the workshop size (coda_edu/presets/quick.yaml).
def executed_text(quick_series, name):
    out, _ = quick_series
    return outputs_of(out / f"{name}.ipynb")[2]


def percent(value):
    return float(value) / 100


@pytest.mark.slow
def test_quick_01_shows_the_imbalance_phenomena(quick_series):
    text = executed_text(quick_series, "01_class_imbalance")
    recall = {m[1]: percent(m[2]) for m in re.finditer(r"^(\w+)\s+recall\s+([\d.]+)%; its largest leak", text, re.M)}
    assert set(recall) == {"background", "RV", "MYO", "LV"}, recall
    foreground = [recall[c] for c in ("RV", "MYO", "LV")]
    assert min(foreground) > 0.1, f"a foreground class is (almost) never found: {recall}"
    assert min(foreground) < recall["background"] - 0.1, f"no recall gap between background and foreground: {recall}"
    # the text follows the run: the rarest class is named, and the lowest test Dice is the table's
    assert "the rarest class is RV" in text
    table = text[text.index("test Dice (best checkpoint)") :].splitlines()
    ensemble = next(line.split() for line in table if line.startswith("ensemble"))
    dice = dict(zip(["RV", "MYO", "LV"], map(float, ensemble[1:4])))
    lowest = min(dice, key=dice.get)
    if lowest == "RV":
        assert "the rarest class also has the lowest test Dice" in text
    else:
        assert f"the lowest test Dice is {lowest}'s ({dice[lowest]:.3f}; RV: {dice['RV']:.3f})" in text
    ratios = {m[1]: float(m[2]) for m in re.finditer(r"^(\w+)\s+predicted .* ratio\s+([\d.]+)$", text, re.M)}
    assert set(ratios) == set(recall), ratios
    assert max(abs(ratios[c] - 1) for c in ("RV", "MYO", "LV")) > 0.2, f"predicted marginal on target: {ratios}"
    assert "is the most under-estimated" in text and "the most over-estimated" in text


@pytest.mark.slow
def test_quick_02_shows_the_gap_and_alignment_reduces_it(quick_series):
    text = executed_text(quick_series, "02_distribution_alignment")
    before = percent(re.search(r"gap to the target before alignment: ([\d.]+)% of the pixels", text)[1])
    after = {m[1]: percent(m[2]) for m in re.finditer(r"^after (\w+)\s*: ([\d.]+)% of the pixels", text, re.M)}
    assert set(after) == {"predictions", "labels", "hard_counts", "argmax_share"}, after
    farthest = re.search(r"the farthest foreground class is (\w+), (over|under)-predicted ([\d.]+)x", text)
    assert farthest and float(farthest[3]) > 1.1, "the pseudo-labels are on target: nothing to align"
    assert before > 0.001
    main = notebooks.notebook_parameters(notebooks.paired_path("02_distribution_alignment"))["main_reading"]
    reading = main["default"].strip('"')
    assert f"after {reading}" in text  # the main figure's reading
    assert after[reading] < 0.5 * before, f"{reading} does not halve the gap: {before:.4%} -> {after[reading]:.4%}"


@pytest.mark.slow
def test_quick_03_every_class_has_pseudo_labels_the_filters_keep(quick_series):
    text = executed_text(quick_series, "03_pseudo_label_filtering")
    for name in ("fixed", "over_expectation"):
        line = re.search(rf"^kept by {name}\s*: (.*)$", text, re.M)[1]
        kept = dict(part.rsplit(" ", 1) for part in line.split(", "))
        assert set(kept) == {"background", "RV", "MYO", "LV"}, line
        assert "n/a" not in kept.values(), f"a class has no pseudo-labels: {line}"
        if name == "over_expectation":
            assert all(percent(v.rstrip("%")) > 0 for v in kept.values()), line
    assert "of the 3 foreground classes with pseudo-labels" in text
    assert "the least precise pseudo-class is" in text


@pytest.mark.slow
def test_quick_04_learns_every_class(quick_series):
    text = executed_text(quick_series, "04_full_experiment")
    table = text[text.index("Dice of the ensemble, best checkpoint") :]
    header = table.splitlines()[1].split()
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in table.splitlines()[2:5] if line.strip()}
    assert header[:4] == ["method", "RV", "MYO", "LV"] and "coda" in rows, table[:400]
    for method, values in rows.items():
        assert min(values[:3]) > 0.2, f"{method} misses a class at the quick size: {dict(zip(header[1:], values))}"


@pytest.mark.slow
def test_quick_04_defines_t_and_prints_one_table_per_checkpoint_that_differs(quick_series):
    text = executed_text(quick_series, "04_full_experiment")
    t = re.search(r"T = method\.rampup x train\.iterations = ([\d.]+) x (\d+) = (\d+) steps", text)
    assert t and int(t[3]) == round(float(t[1]) * int(t[2])), "the ramp-up length T is not printed"
    best = text.count("Dice, checkpoint 'best'")
    last = text.count("Dice, checkpoint 'last'")
    same = "checkpoint 'last' is checkpoint 'best' here" in text
    assert best == 1 and last == (0 if same else 1), (best, last, same)
    assert "trained " in text and "read the finished run" not in text  # a fresh run folder in CI


def pack_table(text, title):
    """The rows of the table printed under the line matching ``title`` (a regular expression; the line
    after it is the header): {first cell: line}, up to the first line that is not a row of columns."""
    lines = text[re.search(title, text).start() :].splitlines()[2:]
    rows = {}
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) < 3:
            break
        rows[cells[0]] = line
    return rows


def plus_minus(line, index=0):
    """The ``index``-th ``+0.123 ± 0.045`` (or ``0.123 ± n/a``) of a line: (mean, std or None)."""
    found = re.findall(r"([+-]?\d+\.\d+) ± (n/a|\d+\.\d+)", line)[index]
    return float(found[0]), None if found[1] == "n/a" else float(found[1])


@pytest.mark.slow
def test_quick_02_shows_over_whole_trainings_what_the_readings_do(quick_series):
    """From the pack (pre-run, 5 seeds): Co-DA with argmax_share beats CPS on the minority class by more
    than one paired std; the default reading removes only part of the RV's under-count, and 02 says so."""
    text = executed_text(quick_series, "02_distribution_alignment")
    assert "pre-run, 5 seeds" in text and "your run: " in text
    rows = pack_table(text, r"pre-run, 5 seeds, the synthetic minority regime")
    assert {"supervised", "cps", "coda, predictions", "coda, argmax share", "filter only", "alignment only"} <= set(
        rows
    )
    gain, spread = plus_minus(rows["coda, argmax share"], 1)  # − cps, paired
    assert gain > spread > 0, rows["coda, argmax share"]
    ratios = {m: float(re.split(r"\s{2,}", line.strip())[3]) for m, line in rows.items() if m != "supervised"}
    assert ratios["cps"] < ratios["coda, predictions"] < 1, ratios
    assert abs(1 - ratios["coda, argmax share"]) < abs(1 - ratios["coda, predictions"]), ratios
    said = re.search(
        r"The default reading, predictions \(coda, predictions\), brings them to ([\d.]+): "
        r"it removes (\d+)% of that under-count",
        text,
    )
    assert said and float(said[1]) == ratios["coda, predictions"] and int(said[2]) < 100, said
    # and what the default reading adds to the filter alone, paired by seed, is printed with its verdict
    added = re.search(
        r"Dice, coda, predictions − filter only: ([+-][\d.]+) ± ([\d.]+) over 5 seeds.*: (the default .*)", text
    )
    assert added, "02 does not compare the default reading with the filter alone"
    within = abs(float(added[1])) <= float(added[2])
    assert added[3].startswith(
        "the default reading adds nothing measurable" if within else "the default reading changes"
    )


@pytest.mark.slow
def test_quick_05_compares_five_seeds_per_method_and_draws_no_spread_it_does_not_have(quick_series):
    out, _ = quick_series
    text = executed_text(quick_series, "05_compare_runs")
    rows = pack_table(text, r"pre-run, 5 seeds: test Dice of")
    assert len(rows) == 6, rows
    for method, line in rows.items():
        assert line.split()[-1] == "5", f"{method}: not 5 seeds"
        assert "n/a" not in line, f"{method}: no std over its seeds"
    paired = pack_table(text, r"pre-run, 5 seeds: test Dice, method − cps")
    gain, spread = plus_minus(paired["coda, argmax share"], 0)  # the RV column
    assert gain > spread > 0, paired["coda, argmax share"]
    assert re.search(
        r"on the minority class RV, coda, argmax share gains most over cps: \+[\d.]+ ± [\d.]+ over 5 seeds .*a finding",
        text,
    )
    assert "the Co-DA that notebook 04 trains (coda, predictions, the default reading)" in text
    # your runs (04's, one seed each): std n/a in the table, and no ± bar in any state of the explorer
    mine = pack_table(text, r"your runs, \d+ labeled: test Dice")
    assert mine and all("n/a" in line for line in mine.values()), mine
    nb = json.loads((out / "05_compare_runs.ipynb").read_text())
    specs = [o["data"][MIME] for c in nb["cells"] for o in c.get("outputs", []) if MIME in o.get("data", {})]
    assert len(specs) == 1
    for state in specs[0]["states"].values():
        if state["layout"]["title"]["text"].startswith("your runs"):
            assert not any(t.get("error_x", {}).get("array") for t in state["data"]), "a ± bar for one seed"


@pytest.mark.slow
def test_full_experiment_on_real_acdc(tmp_path):
    real_data_root("ACDC")
    path = notebooks.execute(
        "04_full_experiment",
        tmp_path,
        {
            "quick": True,
            "dataset": "acdc",
            "compare_baselines": False,
            "solutions": True,
            "run_dir": str(tmp_path / "acdc-run"),
        },
        log=lambda s: None,
    )
    kinds, images, text = outputs_of(path)
    assert "error" not in kinds and images >= 2
    assert "val Dice, checkpoint 'best'" in text  # the ACDC subset has no test split: the notebook says val
    assert (tmp_path / "acdc-run" / "eval.json").is_file()


@pytest.mark.slow
def test_sweep_over_two_cpu_slots_keeps_going_past_a_failed_run_and_compares(tmp_path):
    # Mechanics only, at the smoke size (tests/smoke_preset.yaml): four grid points queued over two CPU
    # slots (coda_course.sweep_devices); Co-DA with every training patient labeled has no unlabeled image,
    # so that one run fails at its start, is reported in one line, and the others still finish and are
    # compared by notebook 05.
    done = subprocess.run(
        cli_command()
        + ["notebooks", "sweep", "--quick", "--out", str(tmp_path), "--devices", "cpu,cpu"]
        + ["--grid", "method=supervised,coda", "--grid", "labeled=2,16", "-p", "compare_baselines", "false"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "CODA_EDU_QUICK_PRESET": str(SMOKE_PRESET)},
    )
    assert done.returncode == 1, done.stderr[-3000:]  # a run failed: non-zero once the others are done
    assert "1 of 4 runs failed:" in done.stdout, done.stdout[-3000:]
    failed = [line for line in done.stdout.splitlines() if line.startswith("  methodcoda-labeled16 on cpu: ")]
    assert len(failed) == 1, done.stdout[-3000:]
    finished = sorted(p.parent.name for p in (tmp_path / "runs").glob("*/eval.json"))
    assert finished == ["methodcoda-labeled2", "methodsupervised-labeled16", "methodsupervised-labeled2"]
    kinds, images, text = outputs_of(tmp_path / "05_compare_runs.ipynb")
    assert "error" not in kinds and images >= 2
    assert "your runs, 2 labeled: 2 runs, methods: ['coda', 'supervised']" in text, text[:3000]
    assert "your runs, 16 labeled: 1 run, methods: ['supervised']" in text, text[:3000]


@pytest.mark.slow
def test_05_compares_the_acdc_group_of_the_pack(tmp_path):
    """pack_group="acdc": the real-data runs of the pack, compared without the data or any training."""
    params = {"solutions": True, "pack_group": "acdc", "runs_dir": str(tmp_path / "no-runs")}
    notebooks.execute("05_compare_runs", tmp_path, params, log=lambda s: None)
    kinds, images, text = outputs_of(tmp_path / "05_compare_runs.ipynb")
    assert "error" not in kinds and images >= 1, text[-2000:]
    assert "pre-run, 5 seeds (0, 1, 2, 3, 4): 15 runs, methods: supervised, coda + options, cps + options" in text, (
        text[:2000]
    )
    assert "reported on the val split" in text
    # with the same options, CPS gains more than Co-DA on the RV (docs/benchmarks-acdc.md says so too)
    assert "on the minority class RV, cps + options gains most over supervised" in text and "a finding" in text


@pytest.mark.slow
def test_02_and_03_read_the_pre_run_pair_instead_of_training(tmp_path):
    """pair="pack": the workshop pair of the course pack, no training (no progress bar), said in the first line."""
    notebooks.run_series(["02", "03"], tmp_path, {"solutions": True, "pair": "pack"}, quick=False, log=lambda s: None)
    for name in ("02_distribution_alignment", "03_pseudo_label_filtering"):
        kinds, images, text = outputs_of(tmp_path / f"{name}.ipynb")
        assert "error" not in kinds and images >= 2 and "✔ correct" in text
        assert text.startswith("pre-run pair (course pack, 8-bit weights): 3 labeled patients"), text[:200]
        assert "64x64 slices, 300 steps, seed 0" in text and not progress_lines(tmp_path / f"{name}.ipynb")


@pytest.mark.slow
def test_04_run_twice_in_the_same_folder_reads_its_run(tmp_path, monkeypatch):
    """The second execution of 04 with the same run folder reads the finished runs (no RunFolderError,
    no training); mechanics only: the smoke size."""
    monkeypatch.setenv("CODA_EDU_QUICK_PRESET", str(SMOKE_PRESET))
    params = {"quick": True, "solutions": True, "run_dir": str(tmp_path / "runs" / "exp")}
    for out in ("first", "second"):
        notebooks.execute("04_full_experiment", tmp_path / out, params, log=lambda s: None)
    first = outputs_of(tmp_path / "first" / "04_full_experiment.ipynb")[2]
    second = outputs_of(tmp_path / "second" / "04_full_experiment.ipynb")[2]
    assert first.count("\ntrained ") + first.startswith("trained ") >= 1 and "read the finished run" not in first
    assert second.count("read the finished run") == 3 and "%|" not in second  # Co-DA and both baselines
    table = lambda text: text[text.index("Dice of the ensemble, best checkpoint") :].splitlines()[:5]  # noqa: E731
    assert table(first) == table(second)


# --------------------------------------------------------------------------- running in place is safe
def _git(repo, *args):
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _repo_copy(tmp_path, names):
    """A git repository holding the committed notebooks, .gitattributes and .gitignore, with the clean filter."""
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    root = notebooks.notebook_dir().parent
    for name in names:
        shutil.copy(notebooks.source_path(name), repo / "notebooks")
        shutil.copy(notebooks.paired_path(name), repo / "notebooks")
    for extra in (".gitattributes", ".gitignore"):
        shutil.copy(root / extra, repo / extra)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "test@example.org")
    _git(repo, "config", "user.name", "test")
    notebooks.install_git_filter(repo)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "notebooks")
    return repo


def _executed_in_jupyterlab(nb):
    """What JupyterLab sends to the server when it saves a notebook it ran: outputs, counts, run
    metadata (papermill's own additions, injected parameters and empty tag lists, removed)."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
        cell.metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
        cell.metadata["scrolled"] = True
    nb.metadata["language_info"] = {"name": "python", "version": "3.11"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def _save_as_jupyterlab(folder, name, nb):
    """Save ``nb`` as JupyterLab with jupytext does, with the hook that ``coda-edu notebooks setup`` registers:
    through jupyter_server's contents manager when it is installed, else its two steps (hook, nbformat.write)
    and jupytext's write of the paired .py."""
    import importlib.util

    import jupytext

    model = {"type": "notebook", "content": json.loads(json.dumps(nb))}
    if importlib.util.find_spec("jupyter_server") is not None:  # installed by `make lab`
        import asyncio

        from jupytext import AsyncTextFileContentsManager
        from traitlets.config import Config

        config = Config()
        config.ContentsManager.pre_save_hook = notebooks.PRE_SAVE_HOOK
        manager = AsyncTextFileContentsManager(root_dir=str(folder), config=config)
        asyncio.run(manager.save(model, f"{name}.ipynb"))
        return
    notebooks.jupyter_pre_save(model, path=f"{name}.ipynb")
    nbformat.write(nbformat.from_dict(model["content"]), folder / f"{name}.ipynb")
    jupytext.write(_executed_in_jupyterlab(nb), folder / f"{name}.py", fmt="py:percent")


def _fake_execution(nb):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells.insert(
        1, nbformat.v4.new_code_cell("# Parameters\nquick = True", metadata={"tags": ["injected-parameters"]})
    )
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
            cell.execution_count = 3
    return _executed_in_jupyterlab(nb)


def test_committed_notebooks_hold_no_outputs():
    assert notebooks.with_outputs(committed=True) == []
    assert notebooks.with_outputs(committed=False) == []  # nor does the working copy, as CI checks it out


def test_strip_restores_the_committed_text():
    for name in notebooks.SERIES:
        committed = notebooks.paired_path(name).read_text()
        executed = nbformat.writes(_fake_execution(nbformat.reads(committed, as_version=4)))
        assert notebooks.strip_text(executed, name) == committed, name
        model = {"type": "notebook", "content": json.loads(executed)}
        notebooks.jupyter_pre_save(model, path=f"notebooks/{name}.ipynb")
        assert notebooks.ipynb_text(model["content"]) == committed, name


def test_saving_an_executed_notebook_in_jupyterlab_changes_nothing(tmp_path, monkeypatch):
    name = "05_compare_runs"
    repo = _repo_copy(tmp_path, [name])
    folder = repo / "notebooks"
    executed = _fake_execution(nbformat.read(folder / f"{name}.ipynb", as_version=4))
    _save_as_jupyterlab(folder, name, executed)
    (folder / "runs" / "scratch").mkdir(parents=True)
    (folder / "runs" / "scratch" / "eval.json").write_text("{}")  # runs trained in place are ignored
    shutil.rmtree(folder / ".ipynb_checkpoints", ignore_errors=True)
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", folder)
    assert notebooks.out_of_sync([name]) == [] and notebooks.with_outputs([name]) == []


def test_the_cli_does_not_execute_into_the_notebook_folder(tmp_path):
    with pytest.raises(NotebookError, match="is the notebook folder"):
        notebooks.execute("01_class_imbalance", notebooks.notebook_dir(), {"quick": True}, log=lambda s: None)


@pytest.mark.slow
def test_running_a_notebook_in_place_leaves_git_status_clean(tmp_path, monkeypatch):
    """Execute 01 (quick) in place in a copy of the repository: first with papermill into the same
    path (git's clean filter hides the outputs from git diff), then saved as JupyterLab does (the
    pre-save hook strips them): nothing tracked changes, the runs are ignored, the sync check passes."""
    import papermill

    monkeypatch.setenv("CODA_EDU_QUICK_PRESET", str(SMOKE_PRESET))  # mechanics only: the smoke size
    name = "01_class_imbalance"
    repo = _repo_copy(tmp_path, [name])
    folder = repo / "notebooks"
    path = folder / f"{name}.ipynb"
    papermill.execute_notebook(
        str(path),
        str(path),
        parameters={"quick": True, "solutions": True},
        progress_bar=False,
        cwd=str(folder),
        kernel_name="python3",
    )
    executed = nbformat.read(path, as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
    assert list((folder / "runs" / "scratch").iterdir())  # the notebook's run went to the ignored folder
    assert _git(repo, "diff", "--stat") == ""  # the clean filter: git sees the committed text
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", folder)
    assert notebooks.out_of_sync([name]) == []
    _save_as_jupyterlab(folder, name, _executed_in_jupyterlab(executed))
    shutil.rmtree(folder / ".ipynb_checkpoints", ignore_errors=True)
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert notebooks.out_of_sync([name]) == [] and notebooks.with_outputs([name]) == []


# --------------------------------------------------------------------------- issue 21: parameters and paths


@pytest.fixture
def executed(monkeypatch):
    """papermill replaced by a stub: records each notebook's parameters and writes an empty notebook."""
    import papermill

    calls = []

    def execute_notebook(src, output, parameters=None, **kwargs):
        calls.append((os.path.basename(src), dict(parameters or {})))
        os.makedirs(os.path.dirname(output), exist_ok=True)
        nbformat.write(nbformat.v4.new_notebook(), output)

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    return calls


@pytest.mark.parametrize(
    "name, typed, expected",
    [
        ("run_dir", "runs/my run #1", "runs/my run #1"),  # YAML cut it at ' #'
        ("method", "yes", "yes"),  # was True
        ("run_dir", "~", "~"),  # was None
        ("run_dir", "C: /x", "C: /x"),  # was a dict
        ("run_dir", "two\nlines", "two\nlines"),  # newlines became spaces
        ("run_dir", "0123", "0123"),
        ("seed", "0123", 123),  # was 83 (YAML's octal)
        ("quick", "yes", True),
        ("quick", "false", False),
        ("overrides", "[method.alpha=0.5, train.iterations=3]", ["method.alpha=0.5", "train.iterations=3"]),
    ],
)
def test_parameters_keep_the_type_the_notebook_declares(tmp_path, executed, name, typed, expected):
    # F8: -p values were read as YAML and silently changed
    from coda_edu import cli

    assert cli.main(["notebooks", "run", "04", "--out", str(tmp_path), "-p", name, typed]) == 0
    [(notebook, parameters)] = executed
    assert notebook == "04_full_experiment.ipynb" and parameters[name] == expected
    assert type(parameters[name]) is type(expected)


@pytest.mark.parametrize(
    "name, typed, fragment",
    [
        ("seed", "12abc", "parameter 'seed' must be int, got '12abc'"),
        ("quick", "~", "parameter 'quick' must be bool"),
        ("overrides", "[&a [x], *a]", "parameter 'overrides': YAML aliases (*name) are not accepted"),
        ("overrides", "just text", "parameter 'overrides' must be list"),
    ],
)
def test_parameters_that_are_not_of_the_declared_type_are_one_line(tmp_path, executed, capsys, name, typed, fragment):
    from coda_edu import cli

    assert cli.main(["notebooks", "run", "04", "--out", str(tmp_path), "-p", name, typed]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and executed == []


def test_notebooks_without_an_action_is_one_line():
    # F6: 'coda-edu notebooks' with no action gave an AttributeError traceback
    done = subprocess.run(cli_command() + ["notebooks"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "usage: coda-edu notebooks run|sweep|sync|check|strip|setup" in lines[0]


def test_sweep_folders_stay_inside_out(tmp_path, executed, capsys):
    # F7: --grid 'method=/../../../X' wrote X/04_full_experiment.ipynb outside --out
    from coda_edu import cli

    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    out = work / "out"
    code = cli.main(["notebooks", "sweep", "--grid", "method=/../../../X,cps", "--grid", "seed=0", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    outside = [p for p in tmp_path.rglob("*") if out not in p.parents and p != out and p not in out.parents]
    assert outside == []
    run_dirs = [parameters["run_dir"] for notebook, parameters in executed if notebook.startswith("04")]
    assert len(run_dirs) == 2 and all(out.resolve() in Path(d).resolve().parents for d in run_dirs)
    assert [parameters["method"] for notebook, parameters in executed if notebook.startswith("04")] == [
        "/../../../X",  # the value itself arrives unchanged; only the folder name is made safe
        "cps",
    ]


def test_sweep_points_whose_folder_names_would_collide_are_refused(tmp_path, executed, capsys):
    from coda_edu import cli

    code = cli.main(["notebooks", "sweep", "--grid", "method=a/b,a_b", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "would share the folder" in err and executed == []
