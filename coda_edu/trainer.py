"""The one training loop for every registered method (supervised, CPS, mean teacher, Co-DA, ...).

:class:`Trainer` builds a run (device, data, networks, the method's state, optimiser, batches),
and :meth:`Trainer.fit` trains it; :func:`coda_edu.train.train` wraps it into a whole experiment
(run folder, final evaluation, figures). The loop knows no method or dataset by name: it reads
their :mod:`~coda_edu.registry` specs (does the method draw unlabeled images, does network B get
gradients, ...), and it imports no plotting.

One step: a two-stream batch (:mod:`coda_edu.data.batches`) -> the algorithm's
``training_step`` under autocast -> backward, optimiser step -> the algorithm's
``after_optimizer_step``. Every ``val_every`` steps the validation cases are scored and
``last.pt`` (and ``best.pt`` when the score improved) are written atomically
(:mod:`coda_edu.checkpoint`, which also stops a run whose loss or weights are not finite).

Under ``torchrun`` one run trains across several processes: each rank keeps its shard of
the global batch, the losses and statistics are those of the global batch, the gradients
are summed over the ranks, and rank 0 alone writes the run folder, validates and evaluates
(:mod:`coda_edu.distributed`; every helper is a no-op in one process).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from . import distributed
from .checkpoint import (
    DivergenceGuard,
    TrainState,
    restore_training,
    rng_state,
    run_checkpoint,
    seed_everything,
)
from .config import Config, resolve
from .data import SegmentationData, load_dataset
from .data.batches import TwoStreamBatches
from .device import (
    Precision,
    cpu_bf16_warning,
    describe,
    memory_format,
    native_cpu_bf16,
    resolve_device,
    resolve_precision,
)
from .errors import ConfigError
from .evaluate import validation_scores
from .io import warn_line
from .models import build_pair
from .optim import build_optimizer, learning_rate
from .progress import progress_bar
from .registry import DATASETS, METHODS
from .run_folder import RunFolder


class Trainer:
    """Holds the networks, optimiser and data of one run; :meth:`fit` trains it (the final evaluation:
    :func:`coda_edu.train.final_evaluation`)."""

    def __init__(
        self,
        cfg: Config | None,
        run_dir: str | Path | RunFolder,
        *,
        resume: bool = False,
        progress: bool = True,
        data: SegmentationData | None = None,
        log: Callable[[str], None] = print,
    ):
        self._join(run_dir, progress, log)  # where: the run folder, and this process's part in it
        # what: the config (a resumed run's own), its method and dataset
        self.cfg = self._open_config(cfg, resume)
        self.method, self.dataset = METHODS.get(self.cfg.method.name), DATASETS.get(self.cfg.data.name)
        # on what: seeds, threads, device and precision, then the data on that device
        self.device, self.precision = self._place()
        self._load_data(data)
        # the two networks, the method's own state and the optimiser
        self.model_a, self.model_b, self.memory_format = self._build_networks()
        self.algorithm = self.method.build(self.cfg, self.data.num_classes, self.data.ignore_index)
        self.algorithm.prepare(self.model_a, self.model_b)
        self.optimizer, self.scaler = self._build_optimizer()
        # the batches: two streams of items, gathered on the device and augmented (coda_edu.data.batches)
        self.batches = self._build_batches()
        self.forward_a, self.forward_b = self._forwards()
        self.state, self.guard = TrainState(), DivergenceGuard(self.ckpt_dir)
        if resume:
            self._load_last()

    # ------------------------------------------------------------------ building a run
    def _join(self, run_dir: str | Path | RunFolder, progress: bool, log: Callable[[str], None]) -> None:
        """The run folder and this process's rank in it: rank 0 alone writes the folder, logs, shows
        progress, validates and evaluates."""
        self.run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
        self.run_dir, self.ckpt_dir = self.run.path, self.run.checkpoints_dir
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        self.log = log if self.is_main else (lambda message: None)

    def _open_config(self, cfg: Config | None, resume: bool) -> Config:
        """A resumed run's own config.yaml (a different ``cfg`` is refused); a new run's folder is created."""
        if resume:
            cfg = self.run.config_for_resume(cfg)
        elif cfg is None:
            raise ConfigError("a new run needs a config (only resume=True reads the run's own config.yaml)")
        elif self.is_main:
            self.run.create(self.log)
        return resolve(cfg)

    def _place(self) -> tuple[torch.device, Precision]:
        """Seed every generator, set the CPU threads, pick this process's device and the precision."""
        c = self.cfg
        seed_everything(distributed.rank_seed(c.seed))
        if c.train.threads:
            torch.set_num_threads(c.train.threads)
        device = distributed.rank_device(resolve_device(c.train.device))
        return device, resolve_precision(device, c.train.precision)

    def _load_data(self, data: SegmentationData | None) -> None:
        """The dataset (loaded unless given), checked against the config, its training pools on the device."""
        self.data = data if data is not None else load_dataset(self.cfg)
        self.data.check_trainable(
            self.cfg.method.name, self.method.uses_unlabeled, self.cfg.model.levels, self.dataset.val_hint
        )
        self.data.labeled.to(self.device)
        self.data.unlabeled.to(self.device)

    def _build_networks(self) -> tuple[torch.nn.Module, torch.nn.Module, torch.memory_format]:
        """Networks A and B: their heads' prior, batch norm over the global batch with several processes,
        the device, dtype and memory format, and rank 0's weights on every rank."""
        c = self.cfg
        model_a, model_b = build_pair(c, self.data.in_channels, self.data.num_classes)
        if c.model.head_prior:
            from .method.alignment import label_marginal
            from .models.init import set_head_prior

            prior = label_marginal(self.data.labeled.labels, self.data.num_classes, self.data.ignore_index)
            set_head_prior(model_a, prior)
            set_head_prior(model_b, prior)
        if self.world_size > 1:
            model_a = distributed.sync_batchnorm(model_a, self.device)
            model_b = distributed.sync_batchnorm(model_b, self.device)
        fmt = memory_format(self.device, c.train.channels_last, self.data.spatial_dims)
        # float32 weights (autocast adds bf16/fp16), float64 under the fp64 testing precision
        for model in (model_a, model_b):
            model.to(self.device, dtype=self.precision.compute, memory_format=fmt)
            distributed.broadcast_module(model)
        return model_a, model_b, fmt

    def _build_optimizer(self) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler]:
        """The optimiser over what the method trains (B only when it gets gradients) and the loss scaler."""
        params = list(self.model_a.parameters())
        if self.method.trains_b:
            params += list(self.model_b.parameters())
        optimizer = build_optimizer(self.cfg, params, self.device)
        return optimizer, torch.amp.GradScaler(self.device.type, enabled=self.precision.needs_scaler)

    def _build_batches(self) -> TwoStreamBatches:
        """The two-stream batches (labeled and, for a semi-supervised method, unlabeled items) on the device."""
        where = (self.device, self.precision.compute, self.memory_format, self.rank, self.world_size)
        return TwoStreamBatches(self.data, self.cfg, self.method.uses_unlabeled, *where)

    def _forwards(self):
        """The callables of the training step: the networks, compiled on CUDA with ``train.compile``."""
        if self.cfg.train.compile and self.device.type == "cuda":
            return torch.compile(self.model_a), torch.compile(self.model_b)
        return self.model_a, self.model_b

    # ------------------------------------------------------------------ checkpoints
    def _load_last(self) -> None:
        """Continue from ``last.pt``: networks, optimiser, scaler, the method's state, the sampler's
        position, the random states and the step (a checkpoint of another run is refused in one line)."""
        ckpt = self.run.load_checkpoint("last", map_location=self.device)
        parts = {"model_a": self.model_a, "model_b": self.model_b, **self._resumable()}
        ranks = (self.rank, self.world_size, distributed.rank_seed(self.cfg.seed))
        self.state = restore_training(ckpt, self.run.checkpoint_path("last"), parts, self.batches.generator, *ranks)
        self.guard.saved_step = self.state.step
        if self.is_main:
            self.run.truncate_metrics(self.state.step)  # forget what the killed run logged after its last checkpoint
        self.log(f"resuming {self.run_dir} at step {self.state.step}")

    def _resumable(self) -> dict:
        """What ``last.pt`` holds besides the networks, by its key there."""
        return dict(
            optimizer=self.optimizer, scaler=self.scaler, algorithm=self.algorithm, sampler=self.batches.sampler
        )

    def _save(self, name: str, **extra) -> None:
        """Write ``best.pt`` or ``last.pt`` (:func:`~coda_edu.checkpoint.run_checkpoint`); the caller has
        checked that the weights are finite."""
        checkpoint = run_checkpoint(self.state.step, self.cfg, self.data, self.model_a, self.model_b, **extra)
        self.run.save_checkpoint(name, checkpoint)

    def _save_last(self, rngs: list[dict]) -> None:
        parts = {key: part.state_dict() for key, part in self._resumable().items()}
        ranks = {"rng_ranks": rngs} if len(rngs) > 1 else {}
        self._save("last", **parts, rng=rngs[0], **ranks, state=vars(self.state).copy())
        self.guard.saved_step = self.state.step

    # ------------------------------------------------------------------ training
    def train_step(self, diagnostics: bool = False) -> dict:
        """One optimisation step; returns the algorithm's logs (tensors)."""
        lr = learning_rate(self.cfg, self.state.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.batches.next()
        self.model_a.train()
        self.model_b.train(self.method.trains_b)
        with distributed.sharded_step(), self.precision.autocast():
            loss, logs = self.algorithm.training_step(
                self.forward_a, self.forward_b, batch, self.state.step, diagnostics
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        distributed.sum_gradients(p for group in self.optimizer.param_groups for p in group["params"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.algorithm.after_optimizer_step(self.model_a, self.model_b, self.state.step)
        self.state.step += 1
        logs["lr"] = lr
        return logs

    def validate(self) -> dict:
        e = self.cfg.eval
        return validation_scores(
            self.model_a, self.model_b, self.data, self.device, self.precision, e.batch_size, e.overlap, e.postprocess
        )

    def fit(self) -> TrainState:
        """Train to ``train.iterations``: step, then log and validate on their steps."""
        total = self.cfg.train.iterations
        if self.state.step == 0 and self.is_main:
            self._start_run()
        slow_bf16 = cpu_bf16_warning(self.precision, native_cpu_bf16())
        if slow_bf16 and self.is_main and self.state.step < total:
            warn_line(slow_bf16)
        bar = progress_bar(
            total=total, initial=self.state.step, desc=self.cfg.method.name, enabled=self.progress, unit="step"
        )
        self.guard.start(self.state.step, self.device)  # NaN/inf: the loss every step, the weights per validation
        self._segment_start, self._postfix = time.perf_counter(), {"loss": "-", "val": "-"}
        try:
            while self.state.step < total:
                logged, validated = self._due(self.state.step + 1)
                logs = self.train_step(diagnostics=logged)
                self.guard.add_loss(logs.get("loss"), self.state.step, read=logged or validated)
                bar.update(1)
                if logged:
                    self._log_train(logs, bar)
                if validated:
                    self._validate_and_save(bar)
        finally:
            bar.close()
        return self.state

    def _start_run(self) -> None:
        c = self.cfg
        self.run.write_config(c)
        self.log(f"run folder: {self.run_dir}")
        self.log(f"data: {self.data.summary()}")
        self.log(
            f"method: {c.method.name} (alignment={c.method.alignment}, filter={c.method.filter}) "
            f"on {describe(self.device)}, {self.precision.name}"
        )

    def _due(self, step: int) -> tuple[bool, bool]:
        """(logged, validated): whether ``step`` writes a metrics line and whether it validates."""
        t, last = self.cfg.train, step == self.cfg.train.iterations
        return step % t.log_every == 0 or last, step % t.val_every == 0 or last

    def _log_train(self, logs: dict, bar) -> None:
        if not self.is_main:
            return
        row = self.run.append_train_logs(self.state.step, logs)
        if isinstance(row.get("loss"), float):
            self._postfix["loss"] = f"{row['loss']:.3f}"
        bar.set_postfix(self._postfix, refresh=False)

    def _validate_and_save(self, bar) -> None:
        """Validate, update the best score, write best.pt when it improved and last.pt always
        (rank 0; the other ranks hand it their random states and wait)."""
        # the one finiteness check of the weights per validation, before any checkpoint is written
        self.guard.check_weights(self.model_a, self.model_b, self.optimizer, self.state.step)
        rngs = distributed.gather_objects(rng_state(self.batches.generator))
        if self.is_main:
            self._validate_and_save_main(bar, rngs)
        distributed.barrier()
        self._segment_start = time.perf_counter()

    def _validate_and_save_main(self, bar, rngs: list[dict]) -> None:
        step = self.state.step
        val_start = time.perf_counter()
        self.state.train_seconds += val_start - self._segment_start
        scores = self.validate()
        selected = scores[self.cfg.eval.select_model]["mean"]
        improved = selected is not None and not math.isnan(selected) and selected > self.state.best_score
        if improved:
            self.state.best_score, self.state.best_step = selected, step
        self.run.append_validation(step, scores, selected, self.state)
        if improved or not self.run.checkpoint_path("best").exists():
            self._save("best", scores=scores)
        self.state.val_seconds += time.perf_counter() - val_start
        self._save_last(rngs)
        self._postfix["val"] = f"{selected:.3f}"
        bar.set_postfix(self._postfix, refresh=True)

    def load_weights(self, checkpoint: str) -> None:
        """Load the networks of the ``best`` or ``last`` checkpoint."""
        self.run.load_networks(checkpoint, self.model_a, self.model_b, map_location=self.device)
