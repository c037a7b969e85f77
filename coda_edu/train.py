"""A whole experiment: ``train(cfg, out)`` trains a run into a run folder (see
:mod:`coda_edu.run_folder` for its files), scores it and draws its figures, and returns the
trained pair. The loop itself is :class:`coda_edu.trainer.Trainer`; this module adds what comes
around it: the run folder (made and locked once), the final evaluation of the ``last`` and
``best`` checkpoints (:mod:`coda_edu.report`) and the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

import torch

from . import distributed
from .checkpoint import TrainState
from .config import Config
from .data import SegmentationData
from .device import resolve_device
from .errors import CodaEduError, ConfigError
from .report import evaluate_run, summary_text, write_figures
from .run_folder import RunFolder
from .trainer import Trainer


def default_run_dir(cfg: Config, root: str | Path = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{stamp}-{cfg.data.name}-{cfg.method.name}-seed{cfg.seed}"


@dataclass
class RunResult:
    """What :func:`train` returns: the run folder, the final state, the evaluation (the
    contents of eval.json plus its per-case rows under ``"cases"``), the data, and the
    trained networks A and B at the ``best`` checkpoint, in eval mode on the training device."""

    run_dir: Path
    state: TrainState
    evaluation: Optional[dict] = None
    data: Optional[SegmentationData] = field(default=None, repr=False)
    model_a: Optional[torch.nn.Module] = field(default=None, repr=False)
    model_b: Optional[torch.nn.Module] = field(default=None, repr=False)


def final_evaluation(trainer: Trainer) -> dict:
    """Score the last and best checkpoints of a trained run, write eval.json, eval_cases.jsonl and the
    figures, print the tables; the networks are left holding the best weights."""
    evaluation = evaluate_run(
        trainer.run,
        trainer.cfg,
        trainer.data,
        trainer.model_a,
        trainer.model_b,
        trainer.device,
        trainer.precision,
        progress=trainer.progress,
        train_seconds=trainer.state.train_seconds,
    )
    trainer.run.write_results(evaluation)
    write_figures(
        trainer.run_dir, trainer.cfg, trainer.data, trainer.model_a, trainer.model_b, trainer.device, trainer.precision
    )
    trainer.log(summary_text(evaluation, trainer.cfg, trainer.data, trainer.run_dir))
    return evaluation


def train(
    cfg: Config | None,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    evaluate: bool = True,
    data: SegmentationData | None = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Train (or resume) a run and evaluate it.

    Returns the run folder, the final state, the evaluation and the trained networks A and B
    (``best`` checkpoint, eval mode). ``resume=True`` continues the run in ``out`` with its own
    config.yaml: pass ``cfg=None`` (a config that differs from the run's is refused).
    """
    if out is None and cfg is None:
        raise ConfigError("train() needs a config, or out= naming the run folder to resume")
    started = distributed.init_from_env(_device_type(cfg, out)) if distributed.launched() else False
    lock = None
    try:
        run, lock = _open_run_folder(cfg, out, resume)
        trainer = Trainer(cfg, run, resume=resume, progress=progress, data=data, log=log)
        state = trainer.fit()
        evaluation = None
        if trainer.is_main:
            if evaluate:
                evaluation = final_evaluation(trainer)
            else:
                trainer.load_weights("best")
        distributed.barrier()  # the other ranks wait for rank 0's evaluation, then read the best weights
        if not trainer.is_main:
            trainer.load_weights("best")
    finally:
        if lock is not None:
            lock.release()
        if started:
            distributed.shutdown()
    trainer.model_a.eval()
    trainer.model_b.eval()
    return RunResult(run.path, state, evaluation, trainer.data, trainer.model_a, trainer.model_b)


def _device_type(cfg: Config | None, out) -> str:
    """Where a run launched by torchrun trains ("cuda": nccl, else gloo), from its config."""
    return resolve_device((cfg if cfg is not None else RunFolder(out).read_config()).train.device).type


def _open_run_folder(cfg: Config | None, out, resume: bool) -> tuple[RunFolder, Optional[object]]:
    """Check, make and lock the run folder (rank 0 alone; the other ranks get its path, or its error).
    The lock is held for the whole run: a second train/resume/eval of the folder is refused."""
    run, lock, error = None, None, None
    if distributed.is_main():
        try:
            run = RunFolder(out if out is not None else default_run_dir(cfg))
            run.check_is_folder()
            if not resume:
                run.check_new()
                run.make()
            lock = run.lock("train --resume" if resume else "train") if run.path.is_dir() else None
        except CodaEduError as exc:
            error = exc
    distributed.raise_if_failed(error)
    return RunFolder(distributed.broadcast_object(str(run.path) if run is not None else None)), lock
