"""Runs queued over devices (coda_course/sweep_devices.py): one run per device at a time, each in
its own process; a failed run is one line and the others' results are kept."""

import json
import os
import subprocess
import sys

import pytest

from coda_course.sweep_devices import Job, parse_devices, report, run_queued
from coda_edu.errors import ConfigError
from tests.conftest import REPO


def job_fn(value, device=None):
    """A run: returns what it saw, fails on request, or dies without a word."""
    if value == "raise":
        raise ConfigError("config key 'train.iterations': must be at least 1")
    if value == "die":
        os._exit(9)
    if value == "sleep":
        import time

        time.sleep(3)
    import torch

    return {"value": value, "device": device, "pid": os.getpid(), "threads": torch.get_num_threads()}


def test_parse_devices():
    assert parse_devices("cpu, cpu") == ["cpu", "cpu"]
    with pytest.raises(ConfigError, match="'gpu0' is not a device"):
        parse_devices("cpu,gpu0")
    with pytest.raises(ConfigError, match="at least one device"):
        parse_devices(" , ")


def test_runs_are_queued_over_the_devices_and_failures_are_one_line_each():
    jobs = [Job(f"run{i}", job_fn, (v,)) for i, v in enumerate([1, "raise", 2, "die", 3])]
    lines = []
    outcomes = run_queued(jobs, ["cpu", "cpu"], log=lines.append)
    assert [o.job.name for o in outcomes] == [j.name for j in jobs]  # job order, whatever finished first
    ok = [o for o in outcomes if o.ok]
    assert [o.value["value"] for o in ok] == [1, 2, 3]
    assert all(o.device == "cpu" and o.value["device"] == "cpu" for o in ok)
    assert len({o.value["pid"] for o in ok}) == 3 and os.getpid() not in {o.value["pid"] for o in ok}
    assert all(o.value["threads"] == max(1, (os.cpu_count() or 1) // 2) for o in ok)  # the cores shared
    failed = {o.job.name: o.error for o in outcomes if not o.ok}
    assert failed["run1"] == "config key 'train.iterations': must be at least 1"
    assert "ended without a result (exit code 9)" in failed["run3"]
    assert all("\n" not in e for e in failed.values())
    summary = []
    assert report(outcomes, summary.append) == 2
    assert summary[0] == "2 of 5 runs failed:" and len(summary) == 3


def test_each_outcome_is_handed_over_as_its_run_ends():
    seen = []
    outcomes = run_queued(
        [Job("a", job_fn, (1,)), Job("b", job_fn, ("raise",))], ["cpu"], log=lambda s: None, on_outcome=seen.append
    )
    assert [o.job.name for o in seen] == ["a", "b"] and seen == outcomes


def test_an_interrupt_starts_no_further_run():
    """Ctrl-C (or ``timeout -s INT``) during a sweep: the parent raises, and the queue stops
    instead of starting the waiting runs in a process that is shutting down."""
    import signal
    import threading
    import time

    lines = []

    def interrupt_once_the_first_run_started():
        while not any(line.endswith("run0: started") for line in lines):
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)  # this process only, not the run's

    # Python ignores SIGINT when it starts with SIGINT ignored (a background job of a script, as
    # CI may run): restore the usual Ctrl-C handler for this test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt_once_the_first_run_started, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_queued([Job(f"run{i}", job_fn, ("sleep",)) for i in range(3)], ["cpu"], log=lines.append)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 120
    while not any("run0: done" in line or "run0: FAILED" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.1)  # the first run (3 s) ends meanwhile, however loaded the machine
    time.sleep(1)  # where the loop would start the next run at once without the stop
    assert any("run0: done" in line for line in lines), lines
    assert sum(line.endswith(": started") for line in lines) == 1, lines


def test_without_devices_the_runs_go_one_after_the_other_here():
    outcomes = run_queued([Job("a", job_fn, (1,)), Job("b", job_fn, ("raise",))], None, log=lambda s: None)
    assert outcomes[0].ok and outcomes[0].value["pid"] == os.getpid() and outcomes[0].device is None
    assert not outcomes[1].ok and "must be at least 1" in outcomes[1].error


@pytest.mark.slow
def test_quality_benchmark_on_two_cpu_slots(tmp_path):
    out = tmp_path / "quality.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "quality.py"), "--quick", "--datasets", "demo"]
        + ["--devices", "cpu,cpu", "--out", str(out)]
        + ["--variant", "cps:method.name=cps", "--variant", "broken:method.name=coda,train.iterations=0"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr[-3000:]  # one variant cannot run: non-zero at the end
    result = json.loads(out.read_text())
    assert sorted((r["method"], r["seed"]) for r in result["runs"]) == [("cps", 0), ("cps", 1)]
    assert result["devices"] == ["cpu", "cpu"]
    assert len(result["failures"]) == 3 and "broken seed 0" in result["failures"][1]
    assert "2 of 4 runs failed" in done.stdout and "mean ± std over 2 seeds" in done.stdout
