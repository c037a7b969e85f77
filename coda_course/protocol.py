"""``coda-edu protocol``: several methods at one setting, trained, evaluated and compared in one table.

::

    coda-edu protocol --config configs/acdc_paper.yaml --methods coda,cps,supervised \\
        [--budget-minutes M] [--seeds 0,1] [--out DIR] [--device cpu]

The steps are small functions: :func:`plan` (one :class:`Job` per method and seed, each a
run folder), :func:`measure_costs` and :func:`size_schedule` (with a budget: the schedule
that fits it), :func:`run_job` (train, or resume, or skip a finished run; ``train()``
validates and evaluates ``last`` and ``best`` on val and test) and :func:`tabulate` (the
comparison table from the runs' ``eval.json``). :func:`run_protocol` strings them together.

What it writes::

    OUT/plan.json                   the request and the schedule; a re-run with the same --out reuses it
    OUT/runs/<method>-seed<N>/      one complete run folder per method and seed (checkpoints kept)
    OUT/protocol.md, protocol.json  the table, rewritten atomically after every run

Every method runs at its registered defaults (``method.alignment``/``method.filter`` from
the registry); every other key comes from the config, the same for all methods. Methods
run one after the other on one device.

**Budget.** With ``budget_minutes`` the whole command (data loading, the warm-up and the
final evaluation included) aims to end within that time. A short warm-up of each method
measures its step time ``s_m``, one validation pass ``v_m`` and the final evaluation
``e_m``; with ``A`` = 90 % of the time left after the warm-up, ``S`` seeds, ``I0`` and
``V0 = ceil(I0 / val_every0)`` the configured steps and validations,

    V = min(V0, max(1, floor(0.2 A / (S sum_m v_m))))        validations per run (at most 20 % of A)
    I = min(I0, floor((A - S sum_m (e_m + 5 s) - V S sum_m v_m) / (S sum_m s_m)))

and ``train.val_every = ceil(I / V)``, ``train.log_every = min(log_every0, max(1, I // 20))`` (a
logged step reads diagnostics from the device, so never more often than configured); the
ramp-up (``method.rampup``) is a fraction of ``train.iterations`` and scales with it.
The table says so.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from coda_edu.config import Config, add_config_options, resolve, set_value
from coda_edu.errors import CodaEduError, ConfigError, RunFolderError, excerpt
from coda_edu.io import atomic_write_json, atomic_write_text, read_json

PLAN = "plan.json"
TABLE_MD, TABLE_JSON = "protocol.md", "protocol.json"
DATA_INFO = "data.json"  # what the loaded data looked like (summary, training size), for the table
WARMUP_STEPS, TIMED_STEPS = 5, 15  # per method, when sizing a schedule to a budget
SAFETY = 0.9  # share of the time left that the sized schedule plans for
VAL_SHARE = 0.2  # at most this share of it goes to validation
RUN_OVERHEAD_S = 5.0  # per run: checkpoint writes, figures, start-up
MIN_ITERATIONS = 20
METRICS = ("dice", "hd95", "asd")
SPLITS = ("val", "test")


class ProtocolError(CodaEduError):
    """A protocol that cannot run as asked (no GPU, a budget too small, another protocol in --out)."""


# --------------------------------------------------------------------------- device
def check_device(device: Optional[str]) -> str:
    """The protocol needs a CUDA GPU; ``cpu`` (smoke tests) must be asked for by name."""
    import torch

    if device in (None, "auto", "cuda") or str(device).startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ProtocolError(
                "coda-edu protocol needs a CUDA GPU and torch sees none "
                f"(torch {torch.__version__}); --device cpu runs it on the CPU, for smoke tests only"
            )
        name = "cuda" if device in (None, "auto") else device
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ProtocolError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) exist")
        return name
    if device == "cpu":
        return "cpu"
    raise ProtocolError(f"--device must be 'cuda', 'cuda:N' or 'cpu' (smoke tests), got {excerpt(device)}")


# --------------------------------------------------------------------------- plan
@dataclass
class Schedule:
    """The steps every run trains, and how they were chosen."""

    iterations: int
    val_every: int
    log_every: int
    config_iterations: int
    config_val_every: int
    sized: bool = False
    budget_minutes: Optional[float] = None
    measured: dict = field(default_factory=dict)  # method -> {"step_s", "val_s", "eval_s"}
    planned_seconds: Optional[float] = None
    note: str = "as configured"


@dataclass
class Job:
    method: str
    seed: int
    run_dir: Path
    cfg: Config

    @property
    def name(self) -> str:
        return f"{self.method}-seed{self.seed}"


def job_config(base: Config, method: str, seed: int, schedule: Optional[Schedule] = None) -> Config:
    """The config of one run: the base config with this method (at its defaults) and seed, evaluating
    val and test with distances, and the schedule's steps."""
    cfg = base.copy()
    set_value(cfg, "method.name", method)
    cfg.method.alignment = cfg.method.filter = None  # the method's registered defaults
    set_value(cfg, "seed", seed)
    set_value(cfg, "eval.splits", list(SPLITS))
    set_value(cfg, "eval.distances", True)
    if schedule is not None:
        set_value(cfg, "train.iterations", schedule.iterations)
        set_value(cfg, "train.val_every", schedule.val_every)
        set_value(cfg, "train.log_every", schedule.log_every)
    return resolve(cfg)


def plan(
    base: Config, methods: list[str], seeds: list[int], out: Path, schedule: Optional[Schedule] = None
) -> list[Job]:
    """One job per seed and method (seed-major: every method of seed 0 first), each with its run folder."""
    from coda_edu.registry import METHODS

    if not methods:
        raise ConfigError("--methods: name at least one method")
    for m in methods:
        METHODS.get(m)  # an unknown name is a one-line error listing the methods
    if len(set(methods)) != len(methods) or len(set(seeds)) != len(seeds):
        raise ConfigError("--methods and --seeds must not repeat a value")
    return [
        Job(m, s, Path(out) / "runs" / f"{m}-seed{s}", job_config(base, m, s, schedule)) for s in seeds for m in methods
    ]


def request_record(base: Config, methods: list[str], seeds: list[int], budget_minutes: Optional[float]) -> dict:
    return {"config": base.to_dict(), "methods": list(methods), "seeds": list(seeds), "budget_minutes": budget_minutes}


def _json_object(path: Path) -> Optional[dict]:
    """A JSON object read from one of the command's own files; None when it is unreadable or not an object."""
    try:
        value = read_json(path)
    except (ValueError, OSError):
        return None
    return value if isinstance(value, dict) else None


def _evaluation(run_dir: Path) -> Optional[dict]:
    """A run's eval.json, None when it has none or it is damaged (the run is then evaluated again)."""
    from coda_edu.run_folder import RunFolder

    try:
        return RunFolder(run_dir).read_eval()
    except RunFolderError:
        return None


def _records(evaluation: Optional[dict]) -> list[dict]:
    """The records of an evaluation that are objects."""
    return [r for r in (evaluation or {}).get("records", []) if isinstance(r, dict)]


def load_plan(out: Path, request: dict) -> Optional[Schedule]:
    """The schedule stored in ``OUT/plan.json`` when it was made for this request (None: no plan yet)."""
    from coda_edu.run_folder import config_differences

    path = out / PLAN
    if not path.is_file():
        return None
    try:
        stored = read_json(path)
        schedule = Schedule(**stored["schedule"])
        old = stored["request"]
    except (ValueError, KeyError, TypeError, OSError):
        raise ProtocolError(
            f"'{path}' is damaged; remove it (finished runs are kept) or choose another --out"
        ) from None
    differ = [k for k in ("methods", "seeds", "budget_minutes") if old.get(k) != request[k]]
    differ += [f"config {k}" for k in config_differences(old.get("config", {}), request["config"])]
    if differ:
        shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
        raise ProtocolError(
            f"'{out}' holds a protocol with other settings (they differ at {shown}): re-run it with its own "
            f"settings to continue it, or choose another --out"
        )
    return schedule


def save_plan(out: Path, request: dict, schedule: Schedule) -> None:
    atomic_write_json(out / PLAN, {"request": request, "schedule": asdict(schedule)})


# --------------------------------------------------------------------------- budget
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_costs(
    jobs: list[Job], data_for: Callable[[Job], object], log: Callable[[str], None] = print
) -> dict[str, dict]:
    """Per method (first seed's job): median step seconds over ``TIMED_STEPS`` after ``WARMUP_STEPS``,
    one validation pass, and the final evaluation estimated from one case with distances
    (x 2 checkpoints x the validation and test cases)."""
    from coda_edu.evaluate import evaluate_cases
    from coda_edu.trainer import Trainer

    costs = {}
    for job in jobs:
        if job.method in costs:
            continue
        data = data_for(job)
        with tempfile.TemporaryDirectory(prefix="coda-edu-warmup-") as tmp:
            trainer = Trainer(job.cfg, Path(tmp) / "run", progress=False, data=data, log=lambda _m: None)
            for _ in range(WARMUP_STEPS):
                trainer.train_step()
            times = []
            for _ in range(TIMED_STEPS):
                _sync(trainer.device)
                start = time.perf_counter()
                trainer.train_step()
                _sync(trainer.device)
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            trainer.validate()
            val_s = time.perf_counter() - start
            start = time.perf_counter()
            c = job.cfg.eval
            evaluate_cases(
                trainer.model_a,
                trainer.model_b,
                data.val[:1],
                data,
                trainer.device,
                trainer.precision,
                distances=True,
                batch_size=c.batch_size,
                overlap=c.overlap,
            )
            eval_s = (time.perf_counter() - start) * 2 * (len(data.val) + len(data.test))
            del trainer
        _free_memory()
        costs[job.method] = {"step_s": statistics.median(times), "val_s": val_s, "eval_s": eval_s}
        log(
            f"  warm-up {job.method}: {costs[job.method]['step_s']:.4f} s/step, validation {val_s:.1f} s, "
            f"final evaluation ~{eval_s:.0f} s"
        )
    return costs


def size_schedule(
    base: Config, costs: dict[str, dict], n_seeds: int, seconds_left: float, budget_minutes: float
) -> Schedule:
    """The schedule that fits ``seconds_left`` (formula in the module docstring); never more steps than configured."""
    t = base.train
    i0, v0, l0 = t.iterations, t.val_every, t.log_every
    avail = SAFETY * seconds_left
    per_step = n_seeds * sum(c["step_s"] for c in costs.values())
    per_val = n_seeds * sum(c["val_s"] for c in costs.values())
    fixed = n_seeds * sum(c["eval_s"] + RUN_OVERHEAD_S for c in costs.values())
    n_val0 = math.ceil(i0 / v0)
    n_val = min(n_val0, max(1, math.floor(VAL_SHARE * avail / per_val))) if per_val > 0 else n_val0
    steps = math.floor((avail - fixed - n_val * per_val) / per_step) if per_step > 0 else i0
    need = min(i0, MIN_ITERATIONS)
    if steps < need:
        minimum = (need * per_step + fixed + per_val) / SAFETY / 60
        raise ProtocolError(
            f"--budget-minutes {budget_minutes:g} is too small: {seconds_left / 60:.1f} min were left after the "
            f"warm-up, and {need} steps of every run plus validation and evaluation need about "
            f"{minimum:.1f} min more; raise the budget or run fewer methods/seeds"
        )
    if steps >= i0:
        iterations, val_every, log_every = i0, v0, l0
        note = f"the {budget_minutes:g}-minute budget fits the configured {i0} steps"
    else:
        iterations = steps
        val_every = max(1, math.ceil(iterations / n_val))
        log_every = min(l0, max(1, iterations // 20))  # a log step syncs the device: never more often
        note = (
            f"sized to a {budget_minutes:g}-minute budget from the measured step times: {iterations} steps instead "
            f"of {i0}, validation every {val_every} steps instead of {v0} ({math.ceil(iterations / val_every)} "
            f"validations), log every {log_every}; the ramp-up is a fraction of the steps and scales with them"
        )
    planned = iterations * per_step + math.ceil(iterations / val_every) * per_val + fixed
    return Schedule(iterations, val_every, log_every, i0, v0, True, budget_minutes, costs, round(planned, 1), note)


# --------------------------------------------------------------------------- run
def job_state(job: Job) -> str:
    """``new``, ``resume`` (a checkpoint exists; also a run trained but not evaluated) or ``done``."""
    from coda_edu.run_folder import RunFolder, config_differences

    kind = RunFolder(job.run_dir).kind()
    if kind in ("missing", "empty", "started"):
        return "new"
    if kind != "run":
        raise RunFolderError(
            f"'{job.run_dir}' is not a coda-edu run folder: the protocol never writes over it; "
            f"remove it or choose another --out"
        )
    stored = resolve(RunFolder(job.run_dir).read_config()).to_dict()
    differ = config_differences(stored, job.cfg.to_dict())
    if differ:
        raise RunFolderError(
            f"'{job.run_dir}' was trained with another config (it differs at {', '.join(differ[:6])}); "
            f"remove it or choose another --out"
        )
    records = _records(_evaluation(job.run_dir))
    if any(r.get("checkpoint") == "last" and r.get("step") == job.cfg.train.iterations for r in records):
        return "done"
    return "resume"


def run_job(job: Job, data, *, progress: bool = True, log: Callable[[str], None] = print) -> str:
    """Train (or resume) one run into its folder; ``train()`` validates and evaluates it. Returns its state."""
    from coda_edu.train import train

    state = job_state(job)
    if state != "done":
        train(job.cfg, job.run_dir, resume=state == "resume", progress=progress, data=data, log=log)
        _free_memory()
    return state


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- table
def code_version() -> str:
    """The git commit of this checkout (``$CODA_EDU_GIT_COMMIT`` where the copy has no .git) and the package version."""
    version = f"coda-edu {__import__('coda_edu').__version__}"
    commit = os.environ.get("CODA_EDU_GIT_COMMIT")
    dirty = ""
    if not commit:
        repo = Path(__file__).resolve().parents[1]
        try:
            head = subprocess.run(
                ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
            )
            commit = head.stdout.strip() if head.returncode == 0 else None
            if commit:
                status = subprocess.run(
                    ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                )
                dirty = " + uncommitted changes" if status.stdout.strip() else ""
        except (OSError, subprocess.SubprocessError):
            commit = None
    return f"git {commit}{dirty}, {version}" if commit else f"{version} (no git commit known)"


def collect(jobs: list[Job]) -> list[dict]:
    """Per job: its state and the contents of its eval.json (None until it is evaluated)."""
    rows = []
    for job in jobs:
        evaluation = _evaluation(job.run_dir)
        last = [r for r in _records(evaluation) if r.get("checkpoint") == "last"]
        if last and last[0].get("step") != job.cfg.train.iterations:
            evaluation = None  # an evaluation of an unfinished run
        rows.append({"method": job.method, "seed": job.seed, "run_dir": str(job.run_dir), "eval": evaluation})
    return rows


def _mean_std(values: list) -> tuple[Optional[float], Optional[float]]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def combine(rows: list[dict], methods: list[str]) -> list[dict]:
    """Records over seeds: per split x checkpoint x model x class x method, the mean (and sample std) of
    Dice, HD95 and ASD over the seeds whose run is evaluated, with the per-seed values."""
    out = []
    evaluated = [r for r in rows if r["eval"]]
    keys = []
    for r in evaluated:
        for rec in r["eval"]["records"]:
            key = (rec["split"], rec["checkpoint"], rec["model"], rec["class"])
            if key not in keys:
                keys.append(key)
    for method in methods:
        runs = [r for r in evaluated if r["method"] == method]
        for split, ckpt, model, cls in keys:
            per_seed = {}
            for r in runs:
                rec = next(
                    (
                        x
                        for x in r["eval"]["records"]
                        if (x["split"], x["checkpoint"], x["model"], x["class"]) == (split, ckpt, model, cls)
                    ),
                    None,
                )
                if rec is not None:
                    per_seed[r["seed"]] = {m: rec.get(m) for m in METRICS} | {
                        "n_missed": rec.get("n_missed", 0),
                        "step": rec.get("step"),
                    }
            if not per_seed:
                continue
            entry = {"split": split, "checkpoint": ckpt, "model": model, "class": cls, "method": method}
            for m in METRICS:
                entry[m], entry[f"{m}_std"] = _mean_std([v[m] for v in per_seed.values()])
            entry["n_missed"] = sum(v["n_missed"] or 0 for v in per_seed.values())
            entry["n_seeds"] = len(per_seed)
            entry["per_seed"] = {str(k): v for k, v in per_seed.items()}
            out.append(entry)
    return out


def _fmt(value, std, digits: int) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None else "")


def protocol_block(jobs: list[Job], rows: list[dict], schedule: Schedule, started: str) -> dict:
    """Dataset, labeled patients, resolution, batch, steps, seeds, device, precision, code, date, data source."""
    from coda_edu.registry import METHODS

    from .pack import describe_source

    cfg = jobs[0].cfg
    first = next((r["eval"] for r in rows if r["eval"]), None)
    ds = (first or {}).get("protocol", {}).get("dataset", {})
    machine = (first or {}).get("machine", {})
    splits = (first or {}).get("protocol", {}).get("evaluated", {}).get("splits", {})
    root = ds.get("root")
    unlabeled_free = [m for m in dict.fromkeys(j.method for j in jobs) if not METHODS.get(m).uses_unlabeled]
    batch = f"{cfg.train.batch_size} ({cfg.train.labeled_batch_size} labeled)"
    if unlabeled_free:
        batch += f"; {', '.join(unlabeled_free)}: the {cfg.train.labeled_batch_size} labeled only"
    labeled = ds.get("labeled_rule") or f"data.labeled_patients = {cfg.data.labeled_patients}"
    cases = ds.get("labeled_cases")
    if cases:
        labeled += f": {', '.join(map(str, cases))}"
    info_path = jobs[0].run_dir.parent.parent / DATA_INFO
    info = (_json_object(info_path) if info_path.is_file() else None) or {}
    size = info.get("train_size") or ds.get("training_size") or list(cfg.data.image_size) or "dataset default"
    return {
        "dataset": cfg.data.name + (f" ({root})" if root else ""),
        "data_source": describe_source(root) if root else "generated in memory (synthetic)",
        "labeled_patients": labeled,
        "resolution": "x".join(map(str, size)) if isinstance(size, list) else size,
        "model": f"U-Net width {cfg.model.base_width}, {cfg.model.levels} levels (A {cfg.model.init_a}, B "
        f"{cfg.model.init_b})",
        "batch": batch,
        "iterations": schedule.iterations,
        "schedule": schedule.note,
        "validation": f"every {schedule.val_every} steps; best = highest validation mean foreground Dice of "
        f"the {cfg.eval.select_model}",
        "rampup": f"sigmoid over the first {cfg.method.rampup:.0%} of the steps "
        f"({round(cfg.method.rampup * schedule.iterations)} steps), lambda_max {cfg.method.lambda_max}",
        "optimiser": f"{cfg.optim.name} lr {cfg.optim.lr} ({cfg.optim.schedule}), momentum {cfg.optim.momentum}, "
        f"weight decay {cfg.optim.weight_decay}",
        "seeds": sorted({j.seed for j in jobs}),
        "methods": list(dict.fromkeys(j.method for j in jobs)),
        "device": machine.get("device", f"{cfg.train.device} (no run evaluated yet)"),
        "precision": machine.get("precision", cfg.train.precision),
        "torch": machine.get("torch"),
        "code": code_version(),
        "started": started,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "splits": splits,
        "order": "sequential, one run at a time on one device",
    }


def _test_note(block: dict, rows: list[dict]) -> Optional[str]:
    test = block["splits"].get("test")
    if test is None or isinstance(test, int):
        return None
    first = next((r["eval"] for r in rows if r["eval"]), {})
    record = first.get("protocol", {}).get("dataset", {}).get("splits", {}).get("test")
    listed = record.get("file") if isinstance(record, dict) else None
    why = f"no {listed} in its folder" if listed else "it has no test cases"
    return (
        f"not available: dataset {block['dataset']} has no test split ({why}; the shared data subsets hold back "
        f"the test patients). Every run folder keeps checkpoints/last.pt and best.pt: add the test split "
        f"(for ACDC-style folders a test.list and its volumes), then `coda-edu eval --run RUN` scores them"
    )


def tabulate(jobs: list[Job], rows: list[dict], schedule: Schedule, started: str) -> tuple[str, dict]:
    """The comparison table: Markdown text and the JSON object."""
    methods = list(dict.fromkeys(j.method for j in jobs))
    block = protocol_block(jobs, rows, schedule, started)
    records = combine(rows, methods)
    classes = [c for c in dict.fromkeys(r["class"] for r in records) if c != "mean"] + ["mean"]
    first = next((r["eval"] for r in rows if r["eval"]), None)
    unit = ((first or {}).get("protocol", {}).get("units") or {}).get("hd95", "voxel")
    test_note = _test_note(block, rows)
    runs = []
    for job, row in zip(jobs, rows):
        ev = row["eval"] or {}
        steps = {r["checkpoint"]: r["step"] for r in ev.get("records", [])}
        runs.append(
            {
                "method": job.method,
                "seed": job.seed,
                "run_dir": str(job.run_dir),
                "status": "evaluated" if row["eval"] else "pending",
                "train_seconds": (ev.get("timing") or {}).get("train_seconds"),
                "eval_seconds": (ev.get("timing") or {}).get("eval_seconds"),
                "best_step": steps.get("best"),
                "last_step": steps.get("last"),
            }
        )
    lines = [f"# Protocol: {', '.join(methods)} on {jobs[0].cfg.data.name}", "", "## Setting", "", "| | |", "|---|---|"]
    for key, value in block.items():
        if key == "splits":
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "(no run evaluated yet)"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        lines.append(f"| {key.replace('_', ' ')} | {value} |")
    lines += ["", "## Runs", "", "| method | seed | status | train min | eval min | best step | last step | folder |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in runs:
        tm = "" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.2f}"
        em = "" if r["eval_seconds"] is None else f"{r['eval_seconds'] / 60:.2f}"
        lines.append(
            f"| {r['method']} | {r['seed']} | {r['status']} | {tm} | {em} | {r['best_step'] or ''} | "
            f"{r['last_step'] or ''} | `{r['run_dir']}` |"
        )
    if schedule.measured:
        lines += [
            "",
            "Measured in the warm-up (s): "
            + "; ".join(
                f"{m} {c['step_s']:.4f}/step, validation {c['val_s']:.1f}, evaluation ~{c['eval_s']:.0f}"
                for m, c in schedule.measured.items()
            )
            + f"; planned {schedule.planned_seconds / 60:.1f} min after the warm-up.",
        ]
    n_seeds = len(block["seeds"])
    spread = " (mean ± sample std over seeds)" if n_seeds > 1 else ""
    names = {"dice": "Dice", "hd95": f"HD95 ({unit})", "asd": f"ASD ({unit})"}
    for split in SPLITS:
        split_records = [r for r in records if r["split"] == split]
        if split == "test" and test_note:
            lines += ["", "## test", "", test_note]
            continue
        if not split_records:
            lines += ["", f"## {split}", "", "(no run evaluated yet)"]
            continue
        for metric in METRICS:
            digits = 4 if metric == "dice" else 2
            lines += ["", f"## {split}: {names[metric]}{spread}", ""]
            lines.append("| method | checkpoint | model | " + " | ".join(classes) + " |")
            lines.append("|---|---|---|" + "---|" * len(classes))
            for method in methods:
                for ckpt in ("best", "last"):
                    for model in ("ensemble", "A", "B"):
                        cells = []
                        for cls in classes:
                            rec = next(
                                (
                                    r
                                    for r in split_records
                                    if (r["method"], r["checkpoint"], r["model"], r["class"])
                                    == (method, ckpt, model, cls)
                                ),
                                None,
                            )
                            cell = "pending" if rec is None else _fmt(rec[metric], rec[f"{metric}_std"], digits)
                            if rec is not None and metric != "dice" and rec["n_missed"]:
                                cell += f" ({rec['n_missed']}m)"
                            cells.append(cell)
                        lines.append(f"| {method} | {ckpt} | {model} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "HD95/ASD: '(Nm)' = N cases (summed over seeds) where a structure was missed; they have no distance and "
            "are left out of the mean (the runs' eval.json also gives hd95_pen/asd_pen, penalised by the image "
            "diagonal). Ensemble = mean of the softmax probabilities of A and B.",
        ]
    payload = {"protocol": block, "schedule": asdict(schedule), "runs": runs, "records": records, "test": test_note}
    return "\n".join(lines) + "\n", payload


def write_table(out: Path, jobs: list[Job], schedule: Schedule, started: str) -> Path:
    """Rewrite OUT/protocol.md and OUT/protocol.json (atomically) from the runs' eval.json files."""
    text, payload = tabulate(jobs, collect(jobs), schedule, started)
    atomic_write_json(out / TABLE_JSON, payload)
    atomic_write_text(out / TABLE_MD, text)
    return out / TABLE_MD


# --------------------------------------------------------------------------- the command
def run_protocol(
    base: Config,
    methods: list[str],
    seeds: list[int],
    out: str | os.PathLike,
    *,
    budget_minutes: Optional[float] = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Plan, (size,) train, evaluate and tabulate; returns the JSON table. ``base.train.device`` must
    already be checked (:func:`check_device`)."""
    from coda_edu.data import load_dataset

    started_clock = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out '{out}' is a file, not a folder")
    if budget_minutes is not None and not budget_minutes > 0:
        raise ConfigError(f"--budget-minutes must be > 0, got {budget_minutes}")
    request = request_record(base, methods, seeds, budget_minutes)
    schedule = load_plan(out, request)
    jobs = plan(base, methods, seeds, out, schedule)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"cannot create --out '{out}': {exc.strerror or exc}") from None
    datasets: dict[int, object] = {}

    def data_for(job: Job):
        # One load per seed, shared by that seed's methods (only method.name differs between them).
        if job.seed not in datasets:
            datasets.clear()
            _free_memory()
            log(f"loading {job.cfg.data.name} (seed {job.seed}) ...")
            data = datasets[job.seed] = load_dataset(job.cfg)
            info = {"summary": data.summary(), "train_size": list(data.train_size)}
            atomic_write_json(out / DATA_INFO, info)
        return datasets[job.seed]

    if schedule is None:
        t = base.train
        if budget_minutes is None:
            schedule = Schedule(t.iterations, t.val_every, t.log_every, t.iterations, t.val_every)
        else:
            log(f"measuring each method's step time to fit {budget_minutes:g} minutes ...")
            costs = measure_costs(jobs, data_for, log)
            left = budget_minutes * 60 - (time.perf_counter() - started_clock)
            schedule = size_schedule(base, costs, len(seeds), left, budget_minutes)
        save_plan(out, request, schedule)
        jobs = plan(base, methods, seeds, out, schedule)
    else:
        log(f"continuing the protocol in {out} ({schedule.note})")
    log(f"schedule: {schedule.iterations} steps per run, validation every {schedule.val_every} ({schedule.note})")
    write_table(out, jobs, schedule, started)
    for number, job in enumerate(jobs, 1):
        state = job_state(job)
        what = {"new": "training", "resume": "resuming", "done": "finished earlier: skipped"}[state]
        log(f"[{number}/{len(jobs)}] {job.name}: {what} -> {job.run_dir}")
        start = time.perf_counter()
        run_job(job, None if state == "done" else data_for(job), progress=progress, log=log)
        table = write_table(out, jobs, schedule, started)
        if state != "done":
            log(
                f"[{number}/{len(jobs)}] {job.name}: done in {(time.perf_counter() - start) / 60:.1f} min; "
                f"table: {table}"
            )
    _, payload = tabulate(jobs, collect(jobs), schedule, started)
    log(f"protocol finished in {(time.perf_counter() - started_clock) / 60:.1f} min: {out / TABLE_MD}")
    return payload


# --------------------------------------------------------------------------- CLI
def add_cli(sub) -> None:
    """``coda-edu protocol ...`` (wired by :mod:`coda_edu.cli`)."""
    p = sub.add_parser("protocol", help="train several methods at one setting and write one comparison table (GPU)")
    add_config_options(
        p,
        "YAML config shared by every method (e.g. configs/acdc_paper.yaml)",
        "override one config key for every method (repeatable)",
    )
    p.add_argument("--methods", default="coda,cps,supervised", help="comma-separated methods (default: %(default)s)")
    p.add_argument("--seeds", help="comma-separated seeds (default: the config's seed)")
    p.add_argument(
        "--budget-minutes", type=float, metavar="M", help="size the schedule so the command ends within M min"
    )
    p.add_argument("--out", metavar="DIR", help="protocol folder (default: runs/protocol-<time>); same DIR continues")
    p.add_argument("--device", help="cuda (default: needs a CUDA GPU), cuda:N, or cpu for smoke tests only")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=cli_run)


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {excerpt(text)}") from None


def _same_command(args, out: Path) -> list[str]:
    """The command line that continues this protocol (the same settings and --out)."""
    words = ["coda-edu", "protocol"] + (["--config", args.config] if args.config else [])
    for item in args.overrides:
        words += ["--set", item]
    words += ["--methods", args.methods] + (["--seeds", args.seeds] if args.seeds else [])
    if args.budget_minutes is not None:
        words += ["--budget-minutes", f"{args.budget_minutes:g}"]
    return words + (["--device", args.device] if args.device else []) + ["--out", str(out)]


def cli_run(args) -> int:
    import shlex
    import sys

    from coda_edu.config import load_config

    if args.config is not None and Path(args.config).is_dir():
        raise ConfigError(f"config file '{args.config}' is a folder, not a file")
    cfg = load_config(args.config, args.overrides)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = _int_list(args.seeds, "--seeds") if args.seeds else [cfg.seed]
    cfg.train.device = check_device(args.device)  # before any data is read: refuse early without a GPU
    out = Path(args.out or f"runs/protocol-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    try:
        run_protocol(cfg, methods, seeds, out, budget_minutes=args.budget_minutes, progress=not args.no_progress)
    except KeyboardInterrupt:
        again = " ".join(shlex.quote(a) for a in _same_command(args, out))
        sys.stderr.write(
            f"coda-edu: interrupted; continue with {again} (finished runs are skipped, the interrupted one resumes "
            f"from its last checkpoint)\n"
        )
        return 130
    return 0
