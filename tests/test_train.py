"""End-to-end runs on tiny synthetic data: run folder, learning, repeatability, resume after SIGKILL."""

import json
import math
import os
import signal
import subprocess
import time

import pytest
import yaml

from coda_course.analysis import PSEUDO_LABEL_FIELDS, pseudo_label_summary
from coda_edu.config import load_config, resolve
from coda_edu.data import load_dataset
from coda_edu.device import resolve_precision
from coda_edu.evaluate import aggregate, evaluate_cases
from coda_edu.io import read_jsonl
from coda_edu.models import build_pair
from coda_edu.train import train
from tests.conftest import REPO, cli_command, tiny_overrides

LEARN = {
    "data.synthetic.n_patients": 16,
    "data.synthetic.slices_per_patient": 6,
    "data.labeled_patients": 5,
    "model.base_width": 8,
    "train.iterations": 160,
    "train.batch_size": 12,
    "train.labeled_batch_size": 6,
    "train.val_every": 40,
    "train.log_every": 10,
    "optim.lr": 0.05,
}


def mean_dice(records, split, checkpoint, model):
    return next(
        r["dice"]
        for r in records
        if r["split"] == split and r["checkpoint"] == checkpoint and r["model"] == model and r["class"] == "mean"
    )


@pytest.fixture(scope="module")
def coda_run(tmp_path_factory):
    cfg = load_config(None, tiny_overrides(**LEARN))
    out = tmp_path_factory.mktemp("runs") / "coda"
    result = train(cfg, out, progress=False, log=lambda s: None)
    return cfg, result


def test_coda_learns_far_beyond_an_untrained_network(coda_run):
    cfg, result = coda_run
    resolved = resolve(cfg)
    data = load_dataset(resolved)
    untrained_a, untrained_b = build_pair(resolved, 1, data.num_classes)
    device = __import__("torch").device("cpu")
    base = evaluate_cases(untrained_a, untrained_b, data.test, data, device, resolve_precision(device), distances=False)
    base_mean = next(
        r["dice"]
        for r in aggregate(base["cases"], data.class_names)
        if r["model"] == "ensemble" and r["class"] == "mean"
    )
    trained = mean_dice(result.evaluation["records"], "test", "best", "ensemble")
    assert trained > 0.6
    assert trained > base_mean + 0.4


def test_run_folder_contents(coda_run):
    cfg, result = coda_run
    run = result.run_dir
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "eval.json",
        "eval_cases.jsonl",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "figures/learning_curves.png",
        "figures/overlay.png",
    ):
        assert (run / name).is_file(), name
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["method"]["alignment"] == "predictions" and saved["model"]["name"] == "unet2d"  # fully resolved
    rows = read_jsonl(run / "metrics.jsonl")
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(10, 161, 10))
    row = train_rows[-1]
    for key in (
        "loss",
        "sup_A",
        "sup_B",
        "unsup_A",
        "unsup_B",
        "lambda",
        "lr",
        "pi_l_A",
        "pi_u_A",
        "pi_l_B",
        "pi_u_B",
        "shares_before_A",
        "shares_after_A",
        "shares_before_B",
        "shares_after_B",
        "coverage_A",
        "coverage_B",
    ):
        assert key in row, key
    assert len(row["pi_l_A"]) == 4 and abs(sum(row["pi_l_A"]) - 1) < 1e-4
    # what benchmarks/pseudo_labels.py tabulates: every diagnostic, per class (synthetic data has hidden truth)
    summary = pseudo_label_summary(rows, "B")
    assert set(summary) == set(PSEUDO_LABEL_FIELDS) and all(len(v) == 4 for v in summary.values())
    assert all(0 <= v <= 1 for v in summary["coverage"])
    assert [r["step"] for r in rows if r["kind"] == "val"] == [40, 80, 120, 160]

    ev = json.loads((run / "eval.json").read_text())
    protocol = ev["protocol"]
    for key in ("checkpoint_rule", "inference", "units", "empty_policy", "dataset", "evaluated"):
        assert key in protocol
    assert protocol["units"]["hd95"] == "voxel"
    records = ev["records"]
    keys = {(r["split"], r["checkpoint"], r["model"], r["class"]) for r in records}
    expected = {
        (s, c, m, k)
        for s in ("val", "test")
        for c in ("last", "best")
        for m in ("A", "B", "ensemble")
        for k in ("RV", "MYO", "LV", "mean")
    }
    assert keys == expected and len(records) == len(expected)
    for r in records:
        for metric in ("dice", "iou", "hd95", "asd", "n_empty_pred", "n_empty_ref", "n_cases"):
            assert metric in r


def test_empty_predictions_give_counted_nans_not_zeros(tiny_config):
    """A network that predicts only background: Dice 0 (a real error), HD95/ASD NaN and counted."""
    import torch

    class Background(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 4, *x.shape[2:])
            logits[:, 0] = 5.0
            return logits

    data = load_dataset(resolve(tiny_config))
    device = torch.device("cpu")
    result = evaluate_cases(Background(), Background(), data.test, data, device, resolve_precision(device))
    records = aggregate(result["cases"], data.class_names)
    for r in records:
        if r["class"] == "mean":
            continue
        assert r["dice"] == 0.0 and r["n_empty_pred"] == r["n_cases"] == len(data.test)
        assert math.isnan(r["hd95"]) and r["hd95_n_nan"] == r["n_cases"]
    from coda_edu.io import to_jsonable

    assert to_jsonable(records)[0]["hd95"] is None  # NaN is written as null in eval.json


def test_to_jsonable_rounds_to_significant_digits_only_when_asked():
    import numpy as np

    from coda_course.static import _clean
    from coda_edu.io import to_jsonable

    value = {"a": np.float32(0.123456789), "b": [float("inf"), 123456.789, 2], "c": np.array([1.0e-7 / 3])}
    assert to_jsonable(value)["b"] == [None, 123456.789, 2]
    assert to_jsonable(value, digits=5) == _clean(value) == {"a": 0.12346, "b": [None, 123460.0, 2], "c": [3.3333e-08]}


def test_same_seed_same_run(tmp_path):
    cfg = load_config(None, tiny_overrides())
    a = train(cfg, tmp_path / "a", progress=False, evaluate=False, log=lambda s: None)
    b = train(cfg, tmp_path / "b", progress=False, evaluate=False, log=lambda s: None)
    rows_a = [r for r in read_jsonl(a.run_dir / "metrics.jsonl") if r["kind"] == "train"]
    rows_b = [r for r in read_jsonl(b.run_dir / "metrics.jsonl") if r["kind"] == "train"]
    assert rows_a == rows_b


@pytest.mark.parametrize("method", ["supervised", "cps", "mean_teacher"])
def test_baselines_run_through_the_same_loop(tmp_path, method):
    cfg = load_config(None, tiny_overrides(**{"method.name": method}))
    result = train(cfg, tmp_path / method, progress=False, log=lambda s: None)
    rows = [r for r in read_jsonl(result.run_dir / "metrics.jsonl") if r["kind"] == "train"]
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert ("unsup_A" in rows[-1]) == (method != "supervised")


@pytest.mark.parametrize(
    "alignment, filt", [("labels", "fixed"), ("predictions", "none"), ("none", "over_expectation")]
)
def test_ablations(tmp_path, alignment, filt):
    cfg = load_config(
        None, tiny_overrides(**{"method.alignment": alignment, "method.filter": filt, "method.expectation": "ema"})
    )
    result = train(cfg, tmp_path / "abl", progress=False, evaluate=False, log=lambda s: None)
    row = [r for r in read_jsonl(result.run_dir / "metrics.jsonl") if r["kind"] == "train"][-1]
    if alignment == "none":
        assert row["shares_before_A"] == row["shares_after_A"]
    # the alignment target pi_l: the labeled class frequencies ("labels"), else the mean softmax on labeled pixels
    assert (row["pi_l_A"] == row["pi_gt_A"]) == (alignment == "labels")
    if filt == "none":
        assert row["kept_A"] == 1.0
    if filt == "fixed":  # confidence >= 0.95 after 8 steps: most pixels are dropped, some kept
        assert 0.0 < row["kept_A"] < 0.9


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    overrides = tiny_overrides(
        **{
            "train.iterations": 400,
            "train.val_every": 10,
            "train.log_every": 1,
            "data.synthetic.resolution": 16,
            "model.levels": 3,
        }
    )
    args = [a for o in overrides for a in ("--set", o)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # Uninterrupted reference run.
    ref = tmp_path / "ref"
    subprocess.run(
        cli_command() + ["train", "--out", str(ref), "--no-progress", "--no-eval"] + args,
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    # Same run, killed with SIGKILL soon after its first checkpoint.
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        cli_command() + ["train", "--out", str(run), "--no-progress", "--no-eval"] + args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.pt").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(r["step"] for r in read_jsonl(run / "metrics.jsonl"))
    assert killed_at < 400, "the run finished before it could be killed"
    done = subprocess.run(
        cli_command() + ["train", "--out", str(run), "--resume", "--no-progress", "--no-eval"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout
    ref_rows = [r for r in read_jsonl(ref / "metrics.jsonl") if r["kind"] == "train"]
    run_rows = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in run_rows] == [r["step"] for r in ref_rows]  # no duplicated or missing steps
    last_ref, last_run = ref_rows[-1], run_rows[-1]
    for key in ("loss", "sup_A", "sup_B", "unsup_A", "unsup_B"):
        assert last_run[key] == pytest.approx(last_ref[key], rel=1e-5, abs=1e-7), key
    assert last_run["pi_u_A"] == pytest.approx(last_ref["pi_u_A"], abs=1e-6)


def test_existing_run_folder_is_not_overwritten(tmp_path):
    from coda_edu.errors import RunFolderError

    cfg = load_config(None, tiny_overrides())
    train(cfg, tmp_path / "r", progress=False, evaluate=False, log=lambda s: None)
    with pytest.raises(RunFolderError, match="already holds a run"):
        train(cfg, tmp_path / "r", progress=False, evaluate=False, log=lambda s: None)


def test_best_equal_to_last_is_scored_once_with_the_records_of_a_second_pass(tmp_path, monkeypatch):
    """evaluate_run copies the records of `last` for a `best` holding the same weights (the last validation
    was the best), and they are what a second pass over the cases gives; different weights are scored."""
    import shutil

    import torch

    from coda_edu import report
    from coda_edu.run_folder import RunFolder

    cfg = resolve(load_config(None, tiny_overrides(**{"train.device": "cpu"})))
    result = train(cfg, tmp_path / "run", progress=False, log=lambda s: None)
    run = RunFolder(result.run_dir)
    shutil.copyfile(run.checkpoint_path("last"), run.checkpoint_path("best"))  # best = last, byte for byte
    splits = [name for name in cfg.eval.splits if getattr(result.data, name)]  # one pass per split with cases
    calls = []
    original_cases, original_same = report.evaluate_cases, report.same_weights
    monkeypatch.setattr(report, "evaluate_cases", lambda *a, **k: calls.append(1) or original_cases(*a, **k))
    args = (
        run,
        cfg,
        result.data,
        result.model_a,
        result.model_b,
        torch.device("cpu"),
        resolve_precision(torch.device("cpu"), "fp32"),
    )

    copied = report.evaluate_run(*args, progress=False)
    assert len(calls) == len(splits) > 0
    monkeypatch.setattr(report, "same_weights", lambda *a: False)  # force the second pass
    scored = report.evaluate_run(*args, progress=False)
    assert len(calls) == 3 * len(splits)
    same = [
        json.dumps(copied[key], sort_keys=True) == json.dumps(scored[key], sort_keys=True)  # NaN == NaN
        for key in ("records", "cases")
    ]
    assert same == [True, True]
    assert {r["checkpoint"] for r in copied["records"]} == {"best", "last"}

    monkeypatch.setattr(report, "same_weights", original_same)
    state = torch.load(run.checkpoint_path("best"), weights_only=False)
    first = next(iter(state["model_a"]))
    state["model_a"][first] = state["model_a"][first] + 1.0  # best now differs from last
    torch.save(state, run.checkpoint_path("best"))
    calls.clear()
    report.evaluate_run(*args, progress=False)
    assert len(calls) == 2 * len(splits)
