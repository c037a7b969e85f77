"""Run a grid of independent runs over devices: one run per device at a time.

    outcomes = run_queued(jobs, parse_devices("cuda:0,cuda:1"), log=print)
    failed = report(outcomes, print)          # one line per failed run; 0 when all succeeded

The runs wait in one queue; each device takes the next run when its current one ends,
so N devices run N runs at once. A run goes to a fresh process (``spawn``) that calls
``job.fn(*job.args, device=DEVICE, **job.kwargs)``: the function pins the run to its
device (``train.device``), and separate processes keep the runs' global state apart
(random streams, torch threads, GPU memory). A run that raises, or whose process dies, is
reported with a one-line error; the other runs go on and their results are kept.
Devices may repeat (``cpu,cpu`` runs two CPU runs at once; each then gets an equal share
of the cores). ``devices=None`` runs the jobs one after the other in this process, with
the same per-run reporting (what the sweeps do without ``--devices``).

Used by ``coda-edu notebooks sweep --devices`` and ``benchmarks/quality.py --devices``.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from coda_edu.errors import CodaEduError, ConfigError, excerpt

_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")


@dataclass
class Job:
    """One run: ``fn`` (a module-level function, so a new process can import it) gets ``device=``."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass
class Outcome:
    job: Job
    device: Optional[str]
    ok: bool
    value: Any = None
    error: str = ""  # one line, when not ok
    seconds: float = 0.0


def parse_devices(text: str) -> list[str]:
    """``"cuda:0,cuda:1"`` -> ``["cuda:0", "cuda:1"]``; every entry must name an available device."""
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices:
        raise ConfigError("--devices: name at least one device, e.g. cuda:0,cuda:1 or cpu,cpu")
    for d in devices:
        if not _DEVICE.fullmatch(d):
            raise ConfigError(f"--devices: {excerpt(d)} is not a device (cpu, mps, cuda or cuda:N)")
    from coda_edu.device import resolve_device

    for d in dict.fromkeys(devices):
        try:
            resolve_device(d)
        except ConfigError as exc:
            raise ConfigError(f"--devices: {str(exc).split(': ', 1)[-1]}") from None
    return devices


def one_line(exc: BaseException) -> str:
    """An exception as one line: the message of a coda-edu error, else ``Type: first line``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, CodaEduError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _child(conn, job: Job, device: str, threads: int) -> None:
    """In the run's own process: share the cores among concurrent CPU runs, run, send the outcome."""
    if device == "cpu":
        os.environ["OMP_NUM_THREADS"] = str(threads)  # a notebook's kernel inherits it
        import torch

        torch.set_num_threads(threads)
    try:
        conn.send((True, job.fn(*job.args, device=device, **job.kwargs)))
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one line for the parent
        conn.send((False, one_line(exc)))
    finally:
        conn.close()


def _in_process(job: Job, device: str, threads: int) -> Outcome:
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, job, device, threads))
    start = time.perf_counter()
    proc.start()
    send.close()  # the child holds the only sending end: a dead child is an EOF here
    try:
        ok, value = receive.recv()
    except EOFError:  # killed (out of memory, a signal) before it could answer
        ok, value = False, None
    proc.join()
    if not ok and value is None:
        value = f"the run's process ended without a result (exit code {proc.exitcode})"
    seconds = time.perf_counter() - start
    return Outcome(job, device, ok, value if ok else None, "" if ok else value, seconds)


def _here(job: Job) -> Outcome:
    start = time.perf_counter()
    try:
        value = job.fn(*job.args, **job.kwargs)
    except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others
        return Outcome(job, None, False, error=one_line(exc), seconds=time.perf_counter() - start)
    return Outcome(job, None, True, value, seconds=time.perf_counter() - start)


def run_queued(
    jobs: list[Job],
    devices: Optional[list[str]] = None,
    log: Callable[[str], None] = print,
    on_outcome: Optional[Callable[[Outcome], None]] = None,
) -> list[Outcome]:
    """Run ``jobs`` (in their order) over ``devices``, one at a time per device; outcomes in job order.

    ``on_outcome`` is called with each outcome as soon as its run ends (one call at a time, from
    whichever thread ran it), so a caller can save results while the others still run. On an
    interrupt (Ctrl-C, ``timeout -s INT``) no queued run starts any more."""
    lock = threading.Lock()

    def finished(outcome: Outcome) -> None:
        with lock:
            _log_outcome(outcome, log)
            if on_outcome is not None:
                on_outcome(outcome)

    if devices is None:
        outcomes = []
        for job in jobs:
            outcomes.append(_here(job))
            finished(outcomes[-1])
        return outcomes
    cpu_slots = sum(d == "cpu" for d in devices)
    threads = max(1, (os.cpu_count() or 1) // max(cpu_slots, 1))
    waiting: queue.Queue = queue.Queue()
    for i, job in enumerate(jobs):
        waiting.put((i, job))
    outcomes: list[Optional[Outcome]] = [None] * len(jobs)

    stopping = threading.Event()  # set on Ctrl-C / SIGINT: no new run starts

    def device_loop(device: str) -> None:
        while not stopping.is_set():
            try:
                i, job = waiting.get_nowait()
            except queue.Empty:
                return
            log(f"[{device}] {job.name}: started")
            outcomes[i] = _in_process(job, device, threads)
            finished(outcomes[i])

    runs = f"{len(jobs)} run" + ("" if len(jobs) == 1 else "s")
    slots = f"{len(devices)} device slot" + ("" if len(devices) == 1 else "s")
    log(f"{runs} on {slots}: {', '.join(devices)}")
    loops = [threading.Thread(target=device_loop, args=(d,), daemon=True) for d in devices]
    try:
        for t in loops:
            t.start()
        for t in loops:
            t.join()
    except KeyboardInterrupt:
        stopping.set()  # the runs in flight get the same signal (same process group) and end
        raise
    return [o for o in outcomes if o is not None]


def _log_outcome(outcome: Outcome, log: Callable[[str], None]) -> None:
    where = f"[{outcome.device}] " if outcome.device else ""
    if outcome.ok:
        log(f"{where}{outcome.job.name}: done in {outcome.seconds:.0f} s")
    else:
        log(f"{where}{outcome.job.name}: FAILED after {outcome.seconds:.0f} s: {outcome.error}")


def report(outcomes: list[Outcome], log: Callable[[str], None] = print) -> int:
    """Print one line per failed run; the number of failed runs (0: all succeeded)."""
    failed = [o for o in outcomes if not o.ok]
    if failed:
        log(f"{len(failed)} of {len(outcomes)} runs failed:")
        for o in failed:
            log(f"  {o.job.name}" + (f" on {o.device}" if o.device else "") + f": {o.error}")
    return len(failed)
