"""The notebook series: paired sources in sync, parameters checked, and every notebook executed (quick)."""

import json
import shutil
import subprocess

import nbformat
import pytest

from coda_edu import notebooks
from coda_edu.notebooks import NotebookError
from tests.conftest import cli_command, real_data_root

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


@pytest.mark.parametrize("args, fragment", [
    (["-p", "alfa", "1"], "has no parameter 'alfa'"),
    (["-p", "quick", "maybe"], "parameter 'quick' must be bool"),
    (["-p", "seed", "1.5"], "parameter 'seed' must be int"),
])
def test_bad_parameters_are_errors_before_running(tmp_path, args, fragment):
    done = subprocess.run(cli_command() + ["notebooks", "run", "01", "--out", str(tmp_path)] + args,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.ipynb"))


def test_failing_cell_is_named(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("quick: bool = False", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("# divide\nresult = 1 / 0")]
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
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code"
                 for o in c.get("outputs", []))
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    return kinds, images, text


@pytest.fixture(scope="module")
def quick_series(tmp_path_factory):
    out = tmp_path_factory.mktemp("notebooks")
    timings = notebooks.run_series(None, out, {"solutions": True}, quick=True, log=lambda s: None)
    return out, timings


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


@pytest.mark.slow
def test_full_experiment_on_real_acdc(tmp_path):
    real_data_root("ACDC")
    path = notebooks.execute("04_full_experiment", tmp_path,
                             {"quick": True, "dataset": "acdc", "compare_baselines": False, "solutions": True,
                              "run_dir": str(tmp_path / "acdc-run")}, log=lambda s: None)
    kinds, images, text = outputs_of(path)
    assert "error" not in kinds and images >= 2
    assert "val Dice, checkpoint 'best'" in text  # the ACDC subset has no test split: the notebook says val
    assert (tmp_path / "acdc-run" / "eval.json").is_file()


@pytest.mark.slow
def test_sweep_produces_the_comparison(tmp_path):
    done = subprocess.run(cli_command() + ["notebooks", "sweep", "--quick", "--out", str(tmp_path),
                                           "--grid", "method=supervised,coda", "--grid", "labeled=2,3",
                                           "-p", "compare_baselines", "false"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["methodcoda-labeled2", "methodcoda-labeled3", "methodsupervised-labeled2", "methodsupervised-labeled3"]
    kinds, images, text = outputs_of(tmp_path / "05_compare_runs.ipynb")
    assert "error" not in kinds and images >= 2
    assert "4 runs" in text and "demonstration grid" not in text
