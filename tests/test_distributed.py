"""One run across 2 processes (torchrun, gloo on the CPU) against one process with the same
global batch; rank 0 alone writes the run folder; a killed 2-process run resumes.

The trajectory comparison runs at ``train.precision=fp64``: one and two processes compute the
same maths in a different order of float sums, and in float32 that order's rounding flips a
max-pool winner, a pseudo-label or a mask pixel within a few steps, after which the runs drift
apart (docs/benchmarks-speed.md#several-processes); in float64 nothing flips and the two trajectories agree to the
logged 6 digits over all 20 steps. The default float32 path is checked on its first steps.

The 2-process runs go through ``tests/dist_entry.py`` (``coda-edu`` plus test hooks): on
rank 1 an audit hook refuses and records any write under the run folder, and
``CODA_EDU_TEST_STOP_AFTER`` ends every rank abruptly after a step. Dropout is off: its
masks are drawn per rank (the same distribution as one process, different draws), which
no trajectory comparison could absorb. Augmentation needs no care: every rank draws the
whole global batch with the same seeded generator and keeps its slice.
"""

import math
import os
import subprocess
import sys

import pytest
import torch

from coda_edu.config import load_config
from coda_edu.io import read_jsonl
from coda_edu.presets import dataset_quick
from coda_edu.train import train
from tests.conftest import REPO

# Co-DA with alignment and the over-expectation filter; 7 labeled + 8 unlabeled images per step,
# so the labeled shards are uneven (4 and 3): the reductions must sum, then divide.
OVERRIDES = list(dataset_quick("synthetic")) + [
    "model.base_width=4",
    "model.dropout=false",
    "method.name=coda",
    "method.alignment=predictions",
    "method.filter=over_expectation",
    "train.batch_size=15",
    "train.labeled_batch_size=7",
    "train.iterations=20",
    "train.log_every=1",
    "train.val_every=10",
    "train.threads=1",
    "eval.distances=false",
]
FP64 = OVERRIDES + ["train.precision=fp64"]
LOSSES = ("loss", "sup_A", "sup_B", "unsup_A", "unsup_B")

pytestmark = pytest.mark.slow


def torchrun(tmp_path, out, *extra, stop_after=0):
    """``coda-edu train`` on 2 processes through tests/dist_entry.py; returns the finished process."""
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS="1",
        CODA_EDU_TEST_RUN=str(out),
        CODA_EDU_TEST_WRITES=str(tmp_path / "writes-by-other-ranks.txt"),
        CODA_EDU_TEST_STOP_AFTER=str(stop_after),
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(REPO / "tests" / "dist_entry.py"), "train", "--out", str(out), "--no-progress", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def train_rows(run):
    return [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    threads = torch.get_num_threads()
    try:  # the reference: one process, the same global batch (train.threads=1 also sets this process's threads)
        train(load_config(None, OVERRIDES), root / "one", progress=False, evaluate=False, log=lambda s: None)
        train(load_config(None, FP64), root / "one64", progress=False, evaluate=False, log=lambda s: None)
    finally:
        torch.set_num_threads(threads)
    args = [a for o in OVERRIDES for a in ("--set", o)]
    two = torchrun(root, root / "two", "--no-eval", *args)
    assert two.returncode == 0, two.stderr[-3000:]
    two64 = torchrun(root, root / "two64", "--no-eval", *args, "--set", "train.precision=fp64")
    assert two64.returncode == 0, two64.stderr[-3000:]
    killed = torchrun(root, root / "killed", *args, stop_after=13)
    assert killed.returncode != 0, "the run was meant to stop after step 13"
    resumed = torchrun(root, root / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return root, resumed


def test_two_processes_follow_the_single_process_trajectory_over_all_steps_in_fp64(runs):
    root, _ = runs
    one, two = train_rows(root / "one64"), train_rows(root / "two64")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 21))
    # Issue 12's target is 1e-3 relative over 20 steps; in float64 the runs agree to the logged 6 digits
    # (measured: 0 difference in the log, 1e-15 in the weights), so every step is held to that.
    for a, b in zip(one, two):
        for key in LOSSES:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=2e-6), (a["step"], key)
        for key in ("pi_l_A", "pi_u_A", "pi_u_B", "kept_A", "kept_B", "pl_acc_A", "pl_acc_B"):
            assert b[key] == pytest.approx(a[key], abs=2e-6), (a["step"], key)
    relative = [abs(b["loss"] - a["loss"]) / abs(a["loss"]) for a, b in zip(one, two)]
    assert max(relative) < 1e-5, relative
    # the same validation scores: GlobalBatchNorm's running statistics are those of one process's BN
    val = [
        [r["dice"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "val"]
        for run in (root / "one64", root / "two64")
    ]
    assert len(val[0]) == 2 and val[0] == val[1]
    # and the same state at the end: weights, batch-norm running statistics (GlobalBatchNorm's unbiased
    # variance like torch's), the EMA marginals and class expectations (measured: equal to ~1e-11)
    one, two = (
        torch.load(run / "checkpoints" / "last.pt", weights_only=True) for run in (root / "one64", root / "two64")
    )
    for net in ("model_a", "model_b"):
        assert one[net].keys() == two[net].keys() and one[net]["stem.1.running_var"].dtype == torch.float64
        for key, value in one[net].items():
            torch.testing.assert_close(two[net][key], value, rtol=1e-9, atol=1e-12, msg=f"{net}.{key}")
    for k in ("A", "B"):
        for stat in ("pi_l", "pi_u", "pi_gt"):
            torch.testing.assert_close(two["algorithm"]["trackers"][k][stat], one["algorithm"]["trackers"][k][stat])
        torch.testing.assert_close(two["algorithm"]["expectations"][k], one["algorithm"]["expectations"][k])


def test_two_processes_in_fp32_agree_until_rounding_flips_something(runs):
    root, _ = runs
    one, two = train_rows(root / "one"), train_rows(root / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 21))
    relative = [abs(b["loss"] - a["loss"]) / abs(a["loss"]) for a, b in zip(one, two)]
    # Exact maths: before rounding noise can flip a LeakyReLU's slope or a pseudo-label, the runs agree.
    for a, b in zip(one[:3], two[:3]):
        for key in LOSSES:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["step"], key)
        assert b["pi_u_A"] == pytest.approx(a["pi_u_A"], abs=1e-5)
        assert b["kept_A"] == pytest.approx(a["kept_A"], abs=1e-3)
    # Then the runs drift apart slowly: the order of float32 sums differs, and at step 3 a rounding-level
    # difference picks the other of two near-equal max-pool inputs (then pseudo-labels and mask pixels flip),
    # which the run amplifies. Measured on this config: up to 1.9e-2 at one step; one process with 2 threads
    # instead of 1 drifts from itself the same way (docs/benchmarks-speed.md#several-processes). The fp64 test
    # above holds every step.
    assert max(relative) < 5e-2, relative


def test_only_rank_zero_writes_the_run_folder(runs):
    root, resumed = runs
    assert not (root / "writes-by-other-ranks.txt").exists(), (root / "writes-by-other-ranks.txt").read_text()
    for run in (root / "two", root / "killed"):
        assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.pt").is_file()
        assert not (run / ".lock").exists()
    # the resumed run evaluated once, on rank 0: one summary in the output, eval.json written
    assert (root / "killed" / "eval.json").is_file()
    assert resumed.stdout.count("results:") == 1


def test_a_killed_two_process_run_resumes_where_it_stopped(runs):
    root, resumed = runs
    assert "resuming" in resumed.stdout and "at step 10" in resumed.stdout
    ref, run = train_rows(root / "two"), train_rows(root / "killed")
    assert [r["step"] for r in run] == list(range(1, 21))  # steps 11-13 of the killed run logged once
    for a, b in zip(ref, run):
        for key in LOSSES:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["step"], key)
    last = torch.load(root / "killed" / "checkpoints" / "last.pt", weights_only=True)
    ranks = last["rng_ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])  # each rank's own streams
    assert torch.equal(ranks[0]["generator"], ranks[1]["generator"])  # the shared augmentation generator
    assert math.isfinite(run[-1]["loss"])
