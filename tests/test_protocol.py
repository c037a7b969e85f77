"""coda-edu protocol: several methods, one table; refused without a GPU; resumable; a budget sizes the schedule."""

import json

import pytest
import torch

from coda_course import protocol
from coda_course.pack import pack_folder, unpack
from coda_edu.cli import main
from coda_edu.config import load_config, preset_path
from coda_edu.io import read_jsonl
from coda_edu.trainer import Trainer
from tests.conftest import tiny_overrides
from tests.test_bad_input import make_acdc


@pytest.fixture(autouse=True)
def _restore_threads():
    """The runs here use one thread (train.threads=1: tiny networks, a shared CPU); give the others theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def tiny(**kw):
    return tiny_overrides(**kw) + ["train.threads=1"]


def sets(*extra, **kw):
    args = []
    for item in tiny(**kw) + list(extra):
        args += ["--set", item]
    return args


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_refuses_without_a_gpu_in_one_line(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["protocol", "--out", str(out), *sets()]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a CUDA GPU" in err and "--device cpu" in err
    assert not out.exists()


def test_cpu_smoke_run_table_and_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "p"
    argv = ["protocol", "--device", "cpu", "--methods", "coda,supervised", "--out", str(out), "--no-progress", *sets()]

    # First run: interrupted after the first checkpoint of the second method.
    original = Trainer._validate_and_save

    def interrupt(self, bar):
        original(self, bar)
        if self.cfg.method.name == "supervised":
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_validate_and_save", interrupt)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted; continue with" in err and str(out) in err
    partial = json.loads((out / "protocol.json").read_text())
    assert [r["status"] for r in partial["runs"]] == ["evaluated", "pending"]

    # Second run: the finished method is skipped, the interrupted one resumes from its checkpoint.
    monkeypatch.setattr(Trainer, "_validate_and_save", original)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "[1/2] coda-seed0: finished earlier: skipped" in printed
    assert "[2/2] supervised-seed0: resuming" in printed and "resuming" in printed and "at step 4" in printed
    steps = [r["step"] for r in read_jsonl(out / "runs" / "supervised-seed0" / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [2, 4, 6, 8]  # each logged step once

    table = json.loads((out / "protocol.json").read_text())
    assert [r["status"] for r in table["runs"]] == ["evaluated", "evaluated"]
    keys = {(r["split"], r["checkpoint"], r["model"], r["class"], r["method"]) for r in table["records"]}
    for split in ("val", "test"):
        for ckpt in ("last", "best"):
            for model in ("A", "B", "ensemble"):
                for cls in ("RV", "MYO", "LV", "mean"):
                    for method in ("coda", "supervised"):
                        assert (split, ckpt, model, cls, method) in keys
    record = table["records"][0]
    assert {"dice", "hd95", "asd", "n_seeds", "per_seed"} <= set(record) and record["n_seeds"] == 1
    block = table["protocol"]
    for key in ("dataset", "labeled_patients", "resolution", "batch", "iterations", "seeds", "device", "precision"):
        assert block[key] not in (None, "")
    assert block["iterations"] == 8 and block["resolution"] == "32x32" and block["seeds"] == [0]
    assert block["code"].startswith(("git ", "coda-edu")) and block["data_source"].startswith("generated")
    assert table["test"] is None  # the synthetic data have a test split
    text = (out / "protocol.md").read_text()
    assert "## val: Dice" in text and "## test: HD95" in text and "| supervised | best | ensemble |" in text
    for method in ("coda", "supervised"):
        run = out / "runs" / f"{method}-seed0"
        for name in ("config.yaml", "metrics.jsonl", "eval.json", "checkpoints/last.pt", "checkpoints/best.pt"):
            assert (run / name).is_file(), run / name

    # A third run with the same settings trains nothing; other settings in the same --out are refused.
    assert main(argv) == 0
    assert "training" not in capsys.readouterr().out
    assert main([*argv, "--seeds", "0,1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other settings" in err and "seeds" in err


def test_size_schedule_fits_the_budget_and_scales_validation():
    base = load_config(preset_path("acdc_paper.yaml"))  # 30,000 steps, validation every 200, log every 50
    costs = {
        "coda": {"step_s": 0.04, "val_s": 1.0, "eval_s": 20.0},
        "cps": {"step_s": 0.036, "val_s": 1.0, "eval_s": 20.0},
        "supervised": {"step_s": 0.02, "val_s": 1.0, "eval_s": 20.0},
    }
    s = protocol.size_schedule(base, costs, n_seeds=1, seconds_left=480, budget_minutes=8)
    assert s.sized and 1000 < s.iterations < 30000
    assert s.planned_seconds <= protocol.SAFETY * 480 + 1
    # Validation scaled with the steps (150 validations at the configured ratio would be 150 x 3 s = 450 s:
    # more than the 20 % share, so fewer); the note says so.
    n_val = -(-s.iterations // s.val_every)
    assert n_val * 3 <= protocol.VAL_SHARE * protocol.SAFETY * 480 + 3
    assert s.log_every == 50  # never more often than configured (a log step syncs the device)
    short = protocol.size_schedule(base, costs, 1, seconds_left=150, budget_minutes=2.5)
    assert short.iterations < 1000 and short.log_every == max(1, short.iterations // 20)
    assert "instead of 30000" in s.note
    # A roomy budget keeps the configured schedule; a tiny one is a one-line error.
    roomy = protocol.size_schedule(base, costs, 1, seconds_left=10 * 3600, budget_minutes=600)
    assert (roomy.iterations, roomy.val_every, roomy.log_every) == (30000, 200, 50)
    with pytest.raises(protocol.ProtocolError, match="too small"):
        protocol.size_schedule(base, costs, 1, seconds_left=60, budget_minutes=1)
    # Twice the seeds: about half the steps.
    two = protocol.size_schedule(base, costs, 2, seconds_left=480, budget_minutes=8)
    assert two.iterations < 0.6 * s.iterations


def test_budget_on_cpu_measures_each_method(tmp_path):
    cfg = load_config(None, tiny() + ["train.device=cpu"])
    table = protocol.run_protocol(
        cfg, ["supervised"], [0], tmp_path / "p", budget_minutes=30, progress=False, log=lambda m: None
    )
    schedule = table["schedule"]
    assert schedule["sized"] and schedule["measured"]["supervised"]["step_s"] > 0
    assert schedule["iterations"] == 8 and "fits the configured 8 steps" in schedule["note"]
    stored = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert stored["schedule"] == schedule  # a re-run reuses it instead of measuring again


def test_packed_acdc_without_test_split(tmp_path):
    """A fake ACDC moved through pack/unpack: the table names the packed source and says test is not available."""
    src = tmp_path / "src" / "ACDC"
    src.mkdir(parents=True)
    make_acdc(src, patients=3, slices=2)
    pack_folder(src, tmp_path / "acdc.cepack", dataset="acdc", folder="ACDC", progress=False)
    root = unpack(tmp_path / "acdc.cepack", tmp_path / "data", progress=False, log=lambda m: None)
    cfg = load_config(
        None,
        tiny(**{"data.labeled_patients": 1})
        + ["data.name=acdc", f"data.root={root}", "data.image_size=[16, 16]", "train.device=cpu"],
    )
    table = protocol.run_protocol(cfg, ["supervised"], [0], tmp_path / "p", progress=False, log=lambda m: None)
    assert table["protocol"]["data_source"].startswith("8-bit packed (coda-edu pack")
    assert table["test"].startswith("not available") and table["protocol"]["splits"]["test"] == "not available"
    assert {r["split"] for r in table["records"]} == {"val"}
    text = (tmp_path / "p" / "protocol.md").read_text()
    assert "## test\n\nnot available" in text and "## val: ASD" in text
