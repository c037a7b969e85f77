"""Run-folder safety: weights-only checkpoints, the run lock, divergence, resume checks, leftovers.

Each test reproduces a fault found in an adversarial pass (issue 11) and checks the fix:
a one-line error with exit status 2, and nothing in the run folder damaged.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from coda_edu.config import load_config
from coda_edu.errors import DivergedError, RunFolderError
from coda_edu.io import RunLock, read_jsonl
from coda_edu.run_folder import RunFolder
from coda_edu.train import train
from coda_edu.trainer import Trainer
from tests.conftest import REPO, cli_command, tiny_overrides

FAST = {
    "data.synthetic.n_patients": 12,
    "data.synthetic.resolution": 16,
    "model.levels": 3,
    "train.iterations": 4,
    "train.val_every": 2,
    "train.log_every": 1,
    "eval.distances": False,
}


def fast_args(**extra) -> list[str]:
    return [a for o in tiny_overrides(**{**FAST, **extra}) for a in ("--set", o)]


def cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(cli_command() + list(args), capture_output=True, text=True, timeout=timeout, env=env)


def one_line_error(done, fragment=None):
    """Exit status 2, no traceback, exactly one non-empty line on stderr (warnings excluded)."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and "warning:" not in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("coda-edu: error: ")
    if fragment is not None:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished run (config.yaml, metrics.jsonl, last.pt and best.pt, no eval)."""
    cfg = load_config(None, tiny_overrides(**FAST))
    out = tmp_path_factory.mktemp("safety") / "run"
    train(cfg, out, progress=False, evaluate=False, log=lambda s: None)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst)
    return dst


def all_finite(path) -> bool:
    state = torch.load(path, weights_only=True)
    return all(
        bool(torch.isfinite(v).all())
        for k in ("model_a", "model_b")
        for v in state[k].values()
        if v.is_floating_point()
    )


# --------------------------------------------------------------------------- 1. weights-only checkpoints


class Payload:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_checkpoints_load_with_weights_only(finished_run):
    last = torch.load(finished_run / "checkpoints" / "last.pt", weights_only=True)
    best = torch.load(finished_run / "checkpoints" / "best.pt", weights_only=True)
    assert last["step"] == 4 and best["step"] in (2, 4)  # best: whichever validation scored higher
    rng = torch.load(finished_run / "checkpoints" / "last.pt", weights_only=True)["rng"]
    assert isinstance(rng["python"]["internal"], list) and isinstance(rng["numpy"]["keys"], torch.Tensor)


def test_malicious_checkpoint_is_refused_by_eval_and_resume(run_copy, tmp_path):
    marker = tmp_path / "pwned"
    # The payload is real: an unsafe load runs it.
    probe = tmp_path / "probe.pt"
    torch.save({"x": Payload(tmp_path / "probe-ran")}, probe)
    torch.load(probe, weights_only=False)
    assert (tmp_path / "probe-ran").exists()

    good = torch.load(run_copy / "checkpoints" / "last.pt", weights_only=True)
    torch.save({**good, "extra": Payload(marker)}, run_copy / "checkpoints" / "last.pt")
    line = one_line_error(cli("eval", "--run", str(run_copy)), "weights_only=True")
    assert "last.pt" in line and not marker.exists()
    line = one_line_error(
        cli("train", "--out", str(run_copy), "--resume", "--no-progress", "--no-eval"), "weights_only"
    )
    assert "last.pt" in line and not marker.exists()
    # The refused process released its lock.
    assert not (run_copy / ".lock").exists()


# --------------------------------------------------------------------------- 2. the run lock


def write_lock(run_dir, pid, host=None):
    (run_dir / ".lock").write_text(
        json.dumps(
            {"pid": pid, "host": host or socket.gethostname(), "command": "train", "started": "2024-01-01 00:00:00"}
        )
    )


def test_lock_held_by_a_live_process_refuses_a_second_writer(run_copy, tmp_path):
    holder = subprocess.Popen(["sleep", "60"])
    try:
        write_lock(run_copy, holder.pid)
        before = (run_copy / "metrics.jsonl").read_bytes()
        for args in (
            ["train", "--out", str(run_copy), "--resume", "--no-progress", "--no-eval"],
            ["eval", "--run", str(run_copy)],
        ):
            line = one_line_error(cli(*args), f"is in use by pid {holder.pid}")
            assert str(run_copy) in line
        assert (run_copy / "metrics.jsonl").read_bytes() == before
        assert json.loads((run_copy / ".lock").read_text())["pid"] == holder.pid  # not taken
        # A new run into a locked (empty) folder is refused too.
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        write_lock(fresh, holder.pid)
        one_line_error(
            cli("train", "--out", str(fresh), "--no-progress", "--no-eval", *fast_args()), f"pid {holder.pid}"
        )
        assert not (fresh / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()


def test_lock_in_process_and_release(tmp_path):
    lock = RunLock(tmp_path, "test").acquire()
    with pytest.raises(RunFolderError, match=f"in use by pid {os.getpid()}"):
        RunLock(tmp_path, "second").acquire()
    lock.release()
    assert not (tmp_path / ".lock").exists()
    with RunLock(tmp_path, "third"):
        assert (tmp_path / ".lock").exists()
    assert not (tmp_path / ".lock").exists()


def test_lock_of_another_host_is_not_taken_over(tmp_path):
    write_lock(tmp_path, 1, host="some-other-machine")
    with pytest.raises(RunFolderError, match="on some-other-machine"):
        RunLock(tmp_path, "test").acquire()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_lock_of_a_dead_process_is_taken_over(run_copy):
    pid = dead_pid()
    write_lock(run_copy, pid)
    done = cli("eval", "--run", str(run_copy))
    assert done.returncode == 0, done.stderr
    assert f"taking over the stale lock of pid {pid}" in done.stderr
    assert (run_copy / "eval.json").is_file()
    assert not (run_copy / ".lock").exists()  # released on exit


def test_lock_is_released_when_training_fails(tmp_path, monkeypatch):
    def boom(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(Trainer, "fit", boom)
    cfg = load_config(None, tiny_overrides(**FAST))
    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "r", progress=False, evaluate=False, log=lambda s: None)
    assert not (tmp_path / "r" / ".lock").exists()


def test_tmp_leftovers_of_dead_writers_are_removed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    dead = tmp_path / "checkpoints" / f"last.pt.coda-edu-tmp-{dead_pid()}"
    mine = tmp_path / f"eval.json.coda-edu-tmp-{os.getpid()}"
    other = tmp_path / "notes.tmp-abc"
    users = tmp_path / f"notes.tmp-{dead_pid()}"  # a name like a temporary file, but not coda-edu's
    for path in (dead, mine, other, users):
        path.write_text("x")
    RunFolder(tmp_path).lock("test").release()
    assert not dead.exists() and mine.exists() and other.exists() and users.exists()


def test_a_folder_holding_only_files_named_like_temporary_ones_is_not_a_run(tmp_path):
    # the same data loss as F5: 'train --out DIR' counted DIR/thesis.tmp-42 as a leftover of its own and deleted it
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"thesis.tmp-{dead_pid()}").write_text("my thesis")
    one_line_error(cli("train", "--out", str(folder), "--no-progress", *fast_args()), "is not a coda-edu run folder")
    assert [p.read_text() for p in folder.iterdir()] == ["my thesis"]


# --------------------------------------------------------------------------- 3. divergence


def test_divergence_stops_with_one_line_and_keeps_finite_checkpoints(tmp_path):
    run = tmp_path / "diverge"
    done = cli(
        "train",
        "--out",
        str(run),
        "--no-progress",
        "--no-eval",
        *fast_args(**{"optim.lr": 1e6, "train.iterations": 12}),
    )
    line = one_line_error(done, "training diverged")
    assert "were kept" in line or "no checkpoint was written" in line
    for name in ("last", "best"):
        path = run / "checkpoints" / f"{name}.pt"
        if path.exists():
            assert all_finite(path), name
    assert not (run / ".lock").exists()


@pytest.mark.parametrize("when", ["loss", "weights"])
def test_nonfinite_step_never_reaches_a_checkpoint(tmp_path, monkeypatch, when):
    """Weights poisoned at step 6: the loss check (step 7) or the weight check (validation at 8) stops the run."""
    original = Trainer.train_step

    def poisoned(self, diagnostics=False):
        logs = original(self, diagnostics)
        if self.state.step == (6 if when == "loss" else 8):
            with torch.no_grad():
                next(self.model_b.parameters()).fill_(float("nan"))
        return logs

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    cfg = load_config(
        None,
        tiny_overrides(
            **{**FAST, "train.iterations": 12, "train.val_every": 4, "train.log_every": 4 if when == "weights" else 1}
        ),
    )
    with pytest.raises(DivergedError) as info:
        train(cfg, tmp_path / "r", progress=False, evaluate=False, log=lambda s: None)
    message = str(info.value)
    assert "\n" not in message and "from step 4 and were kept" in message
    assert ("the loss" in message) == (when == "loss") and ("network B" in message) == (when == "weights")
    for name in ("last", "best"):
        state = torch.load(tmp_path / "r" / "checkpoints" / f"{name}.pt", weights_only=True)
        assert state["step"] == 4 and all_finite(tmp_path / "r" / "checkpoints" / f"{name}.pt")


def test_each_validation_checks_the_weights_once(tmp_path, monkeypatch):
    """One finiteness scan of the weights (and optimiser state) per validation, improving or not, and
    none when a checkpoint is written: best.pt and last.pt are written after that one check."""
    import coda_edu.checkpoint as checkpoint_module  # the trainer's DivergenceGuard calls it

    calls = []
    real = checkpoint_module.nonfinite_parts

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "nonfinite_parts", counting)
    cfg = load_config(None, tiny_overrides(**{**FAST, "train.iterations": 12, "train.val_every": 4}))
    train(cfg, tmp_path / "r", progress=False, evaluate=False, log=lambda s: None)
    assert len(calls) == 3  # validations at steps 4, 8 and 12
    assert all(len(args) == 3 and args[2] is not None for args in calls)  # with the optimiser state
    assert torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)["step"] == 12


# --------------------------------------------------------------------------- 4. resume = the same run


def test_resume_refuses_an_edited_config(run_copy):
    path = run_copy / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["seed"] = 7
    cfg["optim"]["lr"] = 0.5
    cfg["train"]["iterations"] = 6
    path.write_text(yaml.safe_dump(cfg))
    line = one_line_error(
        cli("train", "--out", str(run_copy), "--resume", "--no-progress", "--no-eval"),
        "differs from the config stored in checkpoints/last.pt at optim.lr, seed, train.iterations",
    )
    assert "config.yaml" in line


@pytest.mark.parametrize("damage", ["yaml", "binary", "not_a_mapping", "bad_value"])
def test_damaged_run_config_is_one_line_on_eval_and_resume(run_copy, damage):
    path = run_copy / "config.yaml"
    if damage == "yaml":
        path.write_text("train:\n  iterations: [\n")
    elif damage == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage\x9c")
    elif damage == "not_a_mapping":
        path.write_text("- just\n- a list\n")
    else:
        path.write_text(path.read_text().replace("iterations: 4", "iterations: four"))
    for args in (["eval", "--run", str(run_copy)], ["train", "--out", str(run_copy), "--resume", "--no-progress"]):
        line = one_line_error(cli(*args), "config.yaml")
        assert "run config" in line


# --------------------------------------------------------------------------- 6. run-folder dead ends and leftovers


def test_run_stopped_before_its_first_checkpoint_restarts_in_place(run_copy):
    for name in ("last.pt", "best.pt"):
        (run_copy / "checkpoints" / name).unlink()
    assert RunFolder(run_copy).kind() == "started"
    line = one_line_error(cli("train", "--out", str(run_copy), "--resume", "--no-progress"), "without --resume")
    assert f"--out {run_copy}" in line
    done = cli("train", "--out", str(run_copy), "--no-progress", "--no-eval", *fast_args())
    assert done.returncode == 0, done.stderr
    assert "restarting" in done.stdout
    steps = [r["step"] for r in read_jsonl(run_copy / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4]  # the earlier rows are gone, not interleaved


def test_a_folder_that_is_not_a_run_is_never_written(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.yaml").write_text("my notes\n")
    (folder / "eval.json").write_text("{}\n")
    line = one_line_error(
        cli("train", "--out", str(folder), "--no-progress", *fast_args()), "is not a coda-edu run folder"
    )
    assert str(folder) in line
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "eval.json"]
    assert (folder / "config.yaml").read_text() == "my notes\n"


def test_out_pointing_at_a_file_is_one_line(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    one_line_error(cli("train", "--out", str(target), "--no-progress", *fast_args()), "is a file, not a folder")
    assert target.read_text() == "x"


def test_metrics_jsonl_damaged_middle_line_is_reported_and_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n[1, 2]\n{"step": 4}\n{"step": 5, "tor')
    messages = []
    rows = read_jsonl(path, warn=messages.append)
    assert [r["step"] for r in rows] == [1, 3, 4]  # rows after the damage are kept; a torn last line is dropped
    assert len(messages) == 2 and "line 2" in messages[0] and "line 4" in messages[1]
    with pytest.warns(UserWarning, match="line 2 is damaged"):
        read_jsonl(path)


def test_resume_keeps_rows_after_a_damaged_metrics_line(run_copy):
    path = run_copy / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # damage one line in the middle
    path.write_text("\n".join(lines) + "\n")
    cfg = yaml.safe_load((run_copy / "config.yaml").read_text())
    assert cfg["train"]["iterations"] == 4
    done = cli("train", "--out", str(run_copy), "--resume", "--no-progress", "--no-eval")
    assert done.returncode == 0, done.stderr
    assert "line 2 is damaged" in done.stderr
    rows = read_jsonl(run_copy / "metrics.jsonl", warn=lambda m: None)
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 3, 4]


# --------------------------------------------------------------------------- one-line errors from the command line


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--set", "eval.splits=[]"], "config key 'eval.splits': is empty"),
        (["train", "--set", "seed=18446744073709551616"], "config key 'seed': 18446744073709551616 is out of range"),
        (["train", "--set", "seed=18446744073709551615"], "config key 'seed'"),
        (["train", "--config", "configs"], "config file 'configs' is a folder, not a file"),
        (["config", "--config", "configs"], "is a folder, not a file"),
        (["eval", "--run", "README.md"], "is a file, not a run folder"),
    ],
)
def test_config_and_path_mistakes_are_one_line(args, fragment):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(cli_command() + args, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    one_line_error(done, fragment)


def test_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    from coda_edu import cli

    def oom(self, diagnostics=False):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore details")

    monkeypatch.setattr(Trainer, "train_step", oom)
    code = cli.main(["train", "--out", str(tmp_path / "r"), "--no-progress", *fast_args()])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "out of memory" in err
    assert not (tmp_path / "r" / ".lock").exists()


def test_disk_full_during_a_checkpoint_write_is_one_line(tmp_path, monkeypatch, capsys):
    import errno
    from pathlib import Path

    from coda_edu import cli

    real = Path.write_bytes

    def full(self, data):
        if ".coda-edu-tmp-" in self.name and self.name.startswith("last.pt"):
            real(self, data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    run = tmp_path / "r"
    code = cli.main(["train", "--out", str(run), "--no-progress", "--no-eval", *fast_args()])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "disk is full" in err and "last.pt" in err
    assert list(run.glob("checkpoints/*.coda-edu-tmp-*")) == [] and not (run / "checkpoints" / "last.pt").exists()


# --------------------------------------------------------------------------- issue 21: hostile run folders

from tests.test_config import ALIAS_BOMB  # noqa: E402


def edit_config(run_dir, edit):
    path = run_dir / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.parametrize(
    "edit, keys",
    [
        (lambda c: c["model"].update(base_width=8), "model.base_width"),
        (lambda c: c["data"]["synthetic"].update(noise=0.5), "data.synthetic.noise"),
        (lambda c: c["data"].update(labeled_patients=3), "data.labeled_patients"),
    ],
)
def test_eval_refuses_a_config_edited_since_the_checkpoints(run_copy, edit, keys):
    # F2: a width change gave a state_dict traceback; an edited data key re-scored other data silently
    assert cli("eval", "--run", str(run_copy)).returncode == 0
    before = (run_copy / "eval.json").read_bytes()
    edit_config(run_copy, edit)
    line = one_line_error(cli("eval", "--run", str(run_copy)), "differs from the config stored in checkpoints/")
    assert keys in line and "config.yaml" in line
    assert (run_copy / "eval.json").read_bytes() == before
    assert not (run_copy / ".lock").exists()


def test_eval_may_change_how_it_evaluates(run_copy):
    edit_config(run_copy, lambda c: (c["eval"].update(batch_size=3, distances=True), c["train"].update(device="cpu")))
    done = cli("eval", "--run", str(run_copy))
    assert done.returncode == 0, done.stderr
    assert json.loads((run_copy / "eval.json").read_text())["records"][0].get("hd95", "absent") != "absent"


@pytest.mark.parametrize("name, key", [("best", "model_a"), ("best", "step"), ("last", "model_b"), ("best", "config")])
def test_eval_of_a_checkpoint_lacking_an_entry_is_one_line(run_copy, name, key):
    # F2: a best.pt without model_a or step gave a KeyError traceback
    path = run_copy / "checkpoints" / f"{name}.pt"
    state = torch.load(path, weights_only=True)
    del state[key]
    torch.save(state, path)
    line = one_line_error(cli("eval", "--run", str(run_copy)), f"{name}.pt")
    assert not (run_copy / "eval.json").exists() and "KeyError" not in line


def test_eval_of_a_run_config_alias_bomb_is_one_line_within_seconds(run_copy):
    # F3: eval --run took 48 s and 3.3 GB before "out of memory"
    (run_copy / "config.yaml").write_text(ALIAS_BOMB + "\n" + (run_copy / "config.yaml").read_text())
    for args in (["eval", "--run", str(run_copy)], ["train", "--resume", "--out", str(run_copy), "--no-progress"]):
        line = one_line_error(cli(*args, timeout=30), "YAML aliases (*name) are not accepted")
        assert "config.yaml" in line


def test_a_lock_that_is_a_folder_is_one_line_and_kept(run_copy):
    # F6: RUN/.lock a folder gave IsADirectoryError
    (run_copy / ".lock").mkdir()
    (run_copy / ".lock" / "mine.txt").write_text("x")
    for args in (["eval", "--run", str(run_copy)], ["train", "--resume", "--out", str(run_copy), "--no-progress"]):
        one_line_error(cli(*args), "/.lock' is not a lock file written by coda-edu (a folder)")
    assert (run_copy / ".lock" / "mine.txt").read_text() == "x"


def test_resume_skips_a_metrics_row_whose_step_is_not_a_number(run_copy):
    # F6: a metrics.jsonl row {"step": "x"} made --resume fail with a TypeError
    with open(run_copy / "metrics.jsonl", "a") as fh:
        fh.write('{"step": "x", "kind": "train"}\n{"step": 3.5, "kind": "train"}\n{"kind": "train"}\n')
    edit_config(run_copy, lambda c: None)  # unchanged
    done = cli("train", "--out", str(run_copy), "--resume", "--no-progress", "--no-eval")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "no integer 'step'" in done.stderr
    steps = [r["step"] for r in read_jsonl(run_copy / "metrics.jsonl") if r.get("kind") == "train"]
    assert steps == [1, 2, 3, 4]


@pytest.mark.parametrize("value", ["x", -1, 2.5, None, True])
def test_resume_of_a_checkpoint_with_a_bad_step_is_one_line(run_copy, value):
    # F6: state.step = "x" in last.pt gave a TypeError traceback
    path = run_copy / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["state"]["step"] = value
    torch.save(state, path)
    line = one_line_error(cli("train", "--out", str(run_copy), "--resume", "--no-progress"), "last.pt")
    assert "state.step" in line


def test_the_refusal_of_a_malicious_checkpoint_is_whole(run_copy, tmp_path):
    # F9: the line was cut at 200 characters in the middle of torch's explanation
    good = torch.load(run_copy / "checkpoints" / "best.pt", weights_only=True)
    torch.save({**good, "extra": Payload(tmp_path / "pwned")}, run_copy / "checkpoints" / "best.pt")
    with pytest.raises(RunFolderError) as info:
        from coda_edu.checkpoint import load_checkpoint

        load_checkpoint(run_copy / "checkpoints" / "best.pt")
    message = str(info.value)
    assert "posix.system" in message or "os.system" in message
    assert message.endswith("never runs code from them") and "PyTorch 2.6" not in message and "\x1b" not in message
    assert not (tmp_path / "pwned").exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process start times are read from /proc")
def test_a_lock_whose_pid_now_belongs_to_another_process_is_taken_over(run_copy):
    # pid reuse: the pid in the lock is alive, but it is not the process that wrote the lock
    holder = subprocess.Popen(["sleep", "60"])
    try:
        write_lock(run_copy, holder.pid)
        lock = json.loads((run_copy / ".lock").read_text())
        (run_copy / ".lock").write_text(json.dumps({**lock, "pid_start": 1}))  # started at another time
        done = cli("eval", "--run", str(run_copy))
        assert done.returncode == 0, done.stderr
        assert f"pid {holder.pid} now belongs to another process" in done.stderr
        # the same pid with its real start time is the holder: refused
        from coda_edu.io import process_start

        (run_copy / ".lock").write_text(json.dumps({**lock, "pid_start": process_start(holder.pid)}))
        one_line_error(cli("eval", "--run", str(run_copy)), f"is in use by pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()


def test_disk_full_suggests_resume_only_where_it_helps(tmp_path, monkeypatch, capsys):
    import errno

    from coda_edu import cli as cli_module
    from coda_edu import report

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "eval.json"))

    # a full disk at the first checkpoint: no last.pt, so --resume cannot help
    monkeypatch.setattr("coda_edu.checkpoint.atomic_write", full)
    code = cli_module.main(["train", "--out", str(tmp_path / "r"), "--no-progress", "--no-eval", *fast_args()])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "disk is full" in err and "--resume" not in err
    assert f"coda-edu train --out {tmp_path / 'r'}" in err
    monkeypatch.undo()
    # eval: run the same command again, never --resume
    run = tmp_path / "done"
    train(load_config(None, tiny_overrides(**FAST)), run, progress=False, evaluate=False, log=lambda s: None)
    monkeypatch.setattr(report, "write_figures", full)
    code = cli_module.main(["eval", "--run", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "disk is full" in err and "--resume" not in err
    assert "run the command again" in err


LAYOUT_NAMES = {"config.yaml", "eval.json", "eval_cases.jsonl", "metrics.jsonl", "last.pt", "best.pt"}


def test_only_run_folder_spells_the_run_folder_layout():
    """The file names of a run folder are written only in coda_edu/run_folder.py: the library, the
    course package, the benchmarks and the notebooks reach them through RunFolder (read from the syntax tree: a string
    constant equal to a layout name; docstrings and comments are not code)."""
    import ast

    sources = [
        *(REPO / "coda_edu").rglob("*.py"),
        *(REPO / "coda_course").rglob("*.py"),
        *(REPO / "benchmarks").rglob("*.py"),
        *REPO.glob("notebooks/*.py"),
    ]
    offenders = []
    for path in sorted(sources):
        if path == REPO / "coda_edu" / "run_folder.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in LAYOUT_NAMES:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert offenders == []


def test_is_finished_names_what_a_scored_run_holds(run_copy):
    run = RunFolder(run_copy)
    assert not run.is_finished(None)  # trained, not scored: no eval.json
    run.write_results({"records": [], "cases": []})
    assert run.is_finished() and run.is_finished("last", metrics=True) and run.is_finished(None)
    assert not run.is_finished("missing")
    run.metrics_path.unlink()
    assert run.is_finished() and not run.is_finished(metrics=True)
    run.config_path.unlink()
    assert not run.is_finished(None)
