"""The benchmark scripts run in quick mode, print their tables and write their results."""

import json
import statistics
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run_benchmark(script, tmp_path, *args):
    out = tmp_path / f"{script}.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{script}.py"), "--quick", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


@pytest.mark.slow
def test_throughput_quick(tmp_path):
    stdout, result = run_benchmark("throughput", tmp_path)
    assert "x reference" in stdout and "of peak" in stdout and "dense fp32 matmul peak" in stdout
    rows = {r["loop"]: r for r in result["rows"]}
    ref, coda = rows["reference (fp32, scipy DataLoader)"], rows["coda-edu coda (fp32)"]
    assert ref["step_s"] > 0 and coda["step_s"] > 0
    # Same network, batch and algorithm: the FLOP counts agree within the small cost of the losses.
    assert abs(ref["gflop_per_step"] - coda["gflop_per_step"]) / coda["gflop_per_step"] < 0.05
    assert 0 < coda["peak_fraction"] < 1.5 and coda["peak_memory_mb"] > 0
    assert result["machine"]["cpu"]


@pytest.mark.slow
def test_quality_quick(tmp_path):
    stdout, result = run_benchmark("quality", tmp_path, "--datasets", "synthetic")
    methods = (
        "supervised",
        "cps",
        "mean teacher",
        "coda",
        "coda, predictions",
        "coda, labels",
        "coda, hard counts",
        "coda, argmax share",
        "alignment only",
        "filter only",
    )
    for method in methods:
        assert method in stdout
    assert "mean ± std over 2 seeds" in stdout
    assert len(result["runs"]) == len(methods) * 2
    assert {r["split"] for r in result["runs"]} == {"test"}
    # the pair table (validation Dice of A, B, ensemble) and the bias table (argmax share vs truth) per method
    assert "the pair on the validation split" in stdout and "on the unlabeled pool (hidden truth)" in stdout
    summary = result["summary"]["synthetic"]
    assert {row["method"] for row in summary["pair"]} == set(methods)
    run = result["runs"][0]
    assert set(run["val"]) == {"A", "B", "ensemble"} and set(run["bias"]) == {"A", "B"}
    rv = next(row for row in run["bias"]["A"] if row["class"] == "RV")
    assert 0 < rv["true"] < 0.05 and 0 <= rv["share"] <= 1


@pytest.mark.slow
def test_quality_rows_resume_and_tables_without_running(tmp_path):
    """--rows saves each run's row as it ends; a second call runs only what is missing (same
    settings), and --no-run makes the tables from the file alone."""
    rows = tmp_path / "rows.jsonl"
    sup = ["--variant", "supervised:method.name=supervised"]
    stdout, first = run_benchmark("quality", tmp_path, "--datasets", "demo", "--rows", str(rows), *sup)
    saved = [json.loads(line) for line in rows.read_text().splitlines()]
    assert sorted(r["seed"] for r in saved) == [0, 1] and all(r["method"] == "supervised" for r in saved)
    rows.write_text(rows.read_text() + '{"dataset": "demo", "meth')  # a write torn by a kill
    cps = ["--variant", "cps:method.name=cps"]
    stdout, second = run_benchmark("quality", tmp_path, "--datasets", "demo", "--rows", str(rows), *sup, *cps)
    assert "2 runs already in" in stdout and "not a JSON row, skipped" in stdout
    assert "demo supervised seed 0: done" not in stdout and "demo cps seed 0: done" in stdout  # only CPS ran
    assert [(r["method"], r["seed"]) for r in second["runs"]] == [
        ("supervised", 0),
        ("supervised", 1),
        ("cps", 0),
        ("cps", 1),
    ]
    assert second["runs"][0]["dice"] == first["runs"][0]["dice"]
    # other settings are other runs: nothing saved matches, and --no-run runs nothing
    stdout, third = run_benchmark(
        "quality", tmp_path, "--datasets", "demo", "--rows", str(rows), "--no-run", "--set", "optim.lr=0.5", *sup
    )
    assert third["runs"] == [] and "not in" in stdout and "(--no-run: not run)" in stdout
    stdout, fourth = run_benchmark("quality", tmp_path, "--datasets", "demo", "--rows", str(rows), "--no-run", *cps)
    assert [r["dice"] for r in fourth["runs"]] == [r["dice"] for r in second["runs"][2:]]
    assert "cps" in stdout and "mean ± std over 2 seeds" in stdout


@pytest.mark.slow
def test_time_to_dice_quick(tmp_path):
    stdout, result = run_benchmark("time_to_dice", tmp_path)
    assert "min to 0.52" in stdout
    assert [r["method"] for r in result["rows"]] == ["supervised", "cps", "coda"]
    for curve in result["curves"].values():
        minutes = [p[0] for p in curve]
        assert minutes == sorted(minutes) and len(curve) >= 2


@pytest.mark.slow
def test_gpu_step_quick(tmp_path):
    stdout, result = run_benchmark("gpu_step", tmp_path, "--device", "cpu")
    assert "of bf16 peak" in stdout and "30k steps min" in stdout
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"plain fp32", "plain bf16", "plain bf16 + channels-last", "fast bf16"}
    for row in rows.values():
        assert row["step_s"] > 0 and row["images_per_s"] > 0
        # a fraction, but of a CPU's bf16 matmul peak, which can be below its fp32 convolutions
        # (the CI machine measured 2.4): finite and positive is what holds on every device
        assert 0 < row["peak_fraction_bf16"] < float("inf") and 0 < row["peak_fraction_fp32"] < float("inf")
        assert row["paper_schedule_minutes"] == pytest.approx(30_000 * row["step_s"] / 60)
    # every row computes the same maths and is rated by the plain step's FLOPs
    counted = {name: row["flops_counted"] for name, row in rows.items()}
    assert {row["flops_per_step"] for row in rows.values()} == {counted["plain fp32"]}
    assert counted["plain bf16"] == counted["plain fp32"] == counted["fast bf16"]
    eq = result["equivalence"]
    assert eq["fp32"]["max_rel_loss_diff"] < 1e-4 and eq["fp32"]["rel_weight_diff"] < 1e-3
    assert eq["bf16"]["max_rel_loss_diff"] < 5e-2
    assert result["stopped"] is None and result["peak_bf16_flops"] > 0


@pytest.mark.slow
def test_step_profile_quick(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the script's run folders go
    stdout, result = run_benchmark("step_profile", tmp_path)
    assert [r["method"] for r in result["rows"]] == ["supervised", "cps", "coda"]
    for row in result["rows"]:
        shares = [v for k, v in row.items() if k not in ("method", "step_s", "steps_per_min")]
        assert row["step_s"] > 0 and sum(shares) == pytest.approx(100, abs=1e-6), row
        assert row["conv forward"] > 0 and row["conv backward"] > 0, row
    assert result["validation_s"] > 0 and result["evaluation_s"] > 0
    assert "one validation (Dice" in stdout
    assert list(scratch.glob("step_profile-*")) == [], "the trainers' run folders are removed"


@pytest.mark.slow
def test_step_pairs_quick_times_each_variant_in_turn(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    stdout, result = run_benchmark(
        "step_pairs", tmp_path, "--variant", "plain:", "--variant", "channels-last:train.channels_last=true"
    )
    plain, cl = result["rows"]
    assert (plain["variant"], plain["keys"], cl["keys"]) == ("plain", "-", "train.channels_last=true")
    assert len(plain["rounds_s"]) == len(cl["rounds_s"]) == 2 and min(plain["rounds_s"] + cl["rounds_s"]) > 0
    ratios = [c / p for c, p in zip(cl["rounds_s"], plain["rounds_s"])]  # round by round, over the first variant
    assert plain["ratio_median"] == 1.0 and cl["ratio_median"] == pytest.approx(statistics.median(ratios))
    assert "per round" in stdout and list(scratch.glob("step_pairs-*")) == []


def test_postprocess_ablation_scores_finished_runs_again_without_the_rule(tmp_path):
    from coda_edu.config import load_config
    from coda_edu.io import read_jsonl
    from coda_edu.train import train
    from tests.conftest import tiny_overrides

    for label, method in (("a", "coda"), ("b", "supervised")):
        for seed in (0, 1):
            rule = {"eval.postprocess": "largest_component", "eval.distances": False}
            overrides = tiny_overrides(**{"method.name": method, "seed": seed, **rule})
            train(load_config(None, overrides), tmp_path / f"{label}_s{seed}", progress=False, log=lambda s: None)
    plain = tiny_overrides(**{"eval.distances": False})
    train(load_config(None, plain), tmp_path / "plain", progress=False, log=lambda s: None)

    out = tmp_path / "ablation.json"
    command = [sys.executable, str(REPO / "benchmarks" / "postprocess_ablation.py"), "--out", str(out)]
    done = subprocess.run(
        [*command, "--runs", f"A={tmp_path}/a_s*", "--runs", f"B={tmp_path}/b_s*"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in ("| A, without the rule |", "| A, with − without |", "| A − B, without the rule, paired by seed |"):
        assert line in done.stdout
    rows = {r["label"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["A"]["seeds"] == [0, 1] and rows["A - B"]["seeds"] == [0, 1]
    # "with" is each run's own record (its eval_cases.jsonl), "without" a new pass with the rule off
    cases = [r for r in read_jsonl(tmp_path / "a_s1" / "eval_cases.jsonl") if r["split"] == "val"]
    rv = [r["dice"] for r in cases if r["checkpoint"] == "best" and r["model"] == "ensemble" and r["class"] == "RV"]
    assert rows["A"]["with"]["1"]["RV"] == pytest.approx(sum(rv) / len(rv))
    assert all(0.0 <= v <= 1.0 for seed in rows["B"]["without"].values() for v in seed.values())
    assert sorted(p.name for p in (tmp_path / "a_s0").iterdir()) == sorted(
        ["checkpoints", "config.yaml", "eval.json", "eval_cases.jsonl", "figures", "metrics.jsonl"]
    )  # nothing written into the run folders

    refused = subprocess.run(
        [*command, "--runs", f"P={tmp_path}/plain"], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert refused.returncode != 0 and "eval.postprocess is 'none', not largest_component" in refused.stderr
