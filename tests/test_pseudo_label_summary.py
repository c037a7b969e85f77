"""Pseudo-label diagnostics of a run, averaged over its last steps (analysis + benchmarks/pseudo_labels.py)."""

import json
import math
import subprocess
import sys

import pytest

from coda_course.analysis import pseudo_label_summary
from tests.conftest import REPO


def train_row(step, network="A", coverage=(1.0, 0.5), precision=(0.9, float("nan")), share=(0.9, 0.1)):
    return {
        "kind": "train",
        "step": step,
        f"coverage_{network}": list(coverage),
        f"pl_precision_{network}": list(precision),
        f"pl_recall_{network}": [0.8, 0.4],
        f"shares_after_{network}": list(share),
        f"pi_gt_{network}": [0.8, 0.2],
    }


def test_summary_averages_the_last_steps_of_one_network_ignoring_nan():
    rows = [
        train_row(10, coverage=(0.0, 0.0)),  # early: outside the last 50 %
        train_row(60, coverage=(1.0, 0.4), precision=(0.8, 0.6)),
        train_row(100, coverage=(0.8, 0.6)),  # the RV is absent from this batch: precision NaN
        train_row(100, network="B", coverage=(0.1, 0.1)),  # the other network
        {"kind": "val", "step": 100, "dice": {}},
    ]
    s = pseudo_label_summary(rows, "A", last_fraction=0.5)
    assert s["coverage"] == pytest.approx([0.9, 0.5])
    assert s["pl_precision"] == pytest.approx([0.85, 0.6])  # the NaN is skipped, not counted as 0
    assert s["shares_after"] == pytest.approx([0.9, 0.1]) and s["pi_gt"] == pytest.approx([0.8, 0.2])
    assert pseudo_label_summary(rows, "B", last_fraction=0.5)["coverage"] == pytest.approx([0.1, 0.1])
    assert pseudo_label_summary(rows, "A", last_fraction=1.0)["coverage"] == pytest.approx([0.6, 1 / 3])


def test_summary_of_a_run_without_truth_or_diagnostics():
    row = train_row(10)
    del row["pl_precision_A"], row["pl_recall_A"]  # no hidden truth: those fields are left out
    assert set(pseudo_label_summary([row], "A")) == {"coverage", "shares_after", "pi_gt"}
    assert pseudo_label_summary([{"kind": "train", "step": 10, "loss": 1.0}], "A") == {}
    s = pseudo_label_summary(
        [train_row(10, precision=(math.nan, math.nan)), train_row(20, precision=(math.nan, 1.0))], "A"
    )
    assert math.isnan(s["pl_precision"][0]) and s["pl_precision"][1] == 1.0  # a class never seen stays NaN
    with pytest.raises(ValueError, match="last_fraction"):
        pseudo_label_summary([row], "A", last_fraction=0)


def write_run(folder, coverage_rv):
    folder.mkdir(parents=True)
    rows = [train_row(step, network, coverage=(1.0, coverage_rv)) for step in (50, 100) for network in "AB"]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "eval.json").write_text(json.dumps({"protocol": {"classes": ["background", "RV"]}, "records": []}))


def run_script(*args):
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "pseudo_labels.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pseudo_labels_script_tabulates_seeds_and_names_missing_runs(tmp_path):
    write_run(tmp_path / "toy" / "coda-seed0", 0.4)
    write_run(tmp_path / "toy" / "coda-seed1", 0.6)
    write_run(tmp_path / "toy" / "alignment_only-seed0", 1.0)
    done = run_script(
        "--root", str(tmp_path), "--dataset", "toy", "--seeds", "2", "--method", "coda", "--method", "alignment only"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rv = [line.split() for line in lines if " RV " in line]
    # coda: kept 0.5 ± 0.141 over 2 seeds; share / labeled = 0.1 / 0.2
    assert (
        rv[0][:5] == ["coda", "RV", "2", "0.500", "±"] and rv[0][5] == "0.141" and rv[0][-3:] == ["0.500", "±", "0.000"]
    )
    assert rv[1][:4] == ["alignment", "only", "RV", "1"] and rv[1][4] == "1.000"
    assert "alignment_only-seed1" in done.stderr and "coda-seed" not in done.stderr

    # --save keeps the per-run summaries; --load makes the same table from them alone
    saved = tmp_path / "summaries.json"
    args = ["--root", str(tmp_path), "--dataset", "toy", "--seeds", "2", "--method", "coda", "--save", str(saved)]
    coda_only = run_script(*args)
    assert coda_only.returncode == 0 and saved.is_file() and "alignment only" not in coda_only.stdout
    from_file = run_script("--load", str(saved))
    assert from_file.returncode == 0 and from_file.stdout == coda_only.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    done = run_script("--load", str(bad))
    assert done.returncode == 2 and f"error: {bad}: not a --save file" in done.stderr

    done = run_script("--root", str(tmp_path), "--dataset", "other", "--seeds", "1")
    assert done.returncode == 1 and "error: no finished run of coda on other" in done.stderr
    done = run_script("--root", str(tmp_path), "--last", "2")
    assert done.returncode == 2 and "--last must be in (0, 1]" in done.stderr


def test_pseudo_labels_script_names_a_damaged_eval_json_in_one_line(tmp_path):
    write_run(tmp_path / "toy" / "coda-seed0", 0.4)
    (tmp_path / "toy" / "coda-seed0" / "eval.json").write_text("{not json")
    done = run_script("--root", str(tmp_path), "--dataset", "toy", "--seeds", "1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: ") and "eval.json" in done.stderr and "damaged" in done.stderr
