"""The one training loop: supervised, CPS, mean teacher and Co-DA (and their ablations).

``train(cfg, out)`` runs a whole experiment into a run folder::

    RUN/config.yaml         the fully resolved config
    RUN/metrics.jsonl       one line per logged step ("kind": "train") and per validation ("kind": "val")
    RUN/checkpoints/        last.pt (resumable, refreshed at every validation) and best.pt
    RUN/eval.json           protocol + records (split x checkpoint x model x class)
    RUN/eval_cases.jsonl    the per-case values behind the records
    RUN/figures/            learning_curves.png, overlay.png

One step: draw labeled and unlabeled indices (two streams) -> gather the batch from
the in-memory pools on the device -> batched augmentation -> the algorithm's
``training_step`` under autocast -> backward, optimiser step -> the algorithm's
``after_optimizer_step``. Every ``val_every`` steps the validation cases are scored
and ``last.pt`` (and ``best.pt`` when the score improved) are written atomically.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

import torch

from .checkpoint import (config_differences, load_checkpoint, read_run_config, rng_state, save_checkpoint,
                         seed_everything, set_rng_state)
from .config import Config, from_dict, resolve, save_config
from .data import SegmentationData, load_dataset
from .data.augment import Augmenter
from .data.sampling import TwoStreamSampler
from .device import describe, resolve_device, resolve_precision
from .errors import CodaEduError, ConfigError, DataError, DivergedError, RunFolderError
from .io import append_jsonl, lock_run_folder, run_folder_kind, truncate_jsonl, warn_line
from .method.algorithms import Batch, build_algorithm
from .method.schedules import poly_lr
from .models import build_pair
from .progress import progress_bar


def default_run_dir(cfg: Config, root: str | Path = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{stamp}-{cfg.data.name}-{cfg.method.name}-seed{cfg.seed}"


def build_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def _numbers(logs: dict) -> dict:
    """Tensors -> Python numbers/lists (only on logged steps: this syncs the device)."""
    out = {}
    for k, v in logs.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().float().cpu()
            out[k] = v.item() if v.ndim == 0 else [round(float(x), 6) for x in v.tolist()]
        elif v is None:
            continue
        else:
            out[k] = v
        if isinstance(out[k], float):
            out[k] = round(out[k], 6)
    return out


@dataclass
class TrainState:
    step: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    train_seconds: float = 0.0   # time spent in training steps (validation and checkpoints excluded)
    val_seconds: float = 0.0     # time spent validating and writing checkpoints


@dataclass
class RunResult:
    run_dir: Path
    state: TrainState
    evaluation: Optional[dict] = None
    data: Optional[SegmentationData] = field(default=None, repr=False)


class Trainer:
    """Holds the networks, optimiser and data of one run; :meth:`fit` trains, :meth:`evaluate` scores."""

    def __init__(self, cfg: Config, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 data: SegmentationData | None = None, log: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.progress = progress
        self.log = log
        if resume:
            cfg = self._config_for_resume()
        else:
            self._check_new_run_dir()
        self.cfg = resolve(cfg)
        c = self.cfg
        seed_everything(c.seed)
        if c.train.threads:
            torch.set_num_threads(c.train.threads)
        self.device = resolve_device(c.train.device)
        self.precision = resolve_precision(self.device, c.train.precision)
        self.data = data if data is not None else load_dataset(c)
        self._check_data()
        self.data.labeled.to(self.device)
        self.data.unlabeled.to(self.device)

        self.model_a, self.model_b = build_pair(c, self.data.in_channels, self.data.num_classes)
        if c.model.head_prior:
            from .method.alignment import label_marginal
            from .models.init import set_head_prior

            prior = label_marginal(self.data.labeled.labels, self.data.num_classes, self.data.ignore_index)
            set_head_prior(self.model_a, prior)
            set_head_prior(self.model_b, prior)
        channels_last = c.train.channels_last if c.train.channels_last is not None else self.device.type == "cuda"
        fmt = (torch.channels_last if self.data.spatial_dims == 2 else torch.channels_last_3d) if channels_last else torch.contiguous_format
        self.model_a.to(self.device, memory_format=fmt)
        self.model_b.to(self.device, memory_format=fmt)
        self.memory_format = fmt
        self.algorithm = build_algorithm(c, self.data.num_classes, self.data.ignore_index)
        self.algorithm.prepare(self.model_a, self.model_b)
        params = list(self.model_a.parameters()) + (list(self.model_b.parameters()) if self.algorithm.trains_b else [])
        self.optimizer = build_optimizer(c, params)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.needs_scaler)
        unlabeled_batch = c.train.batch_size - c.train.labeled_batch_size if self.algorithm.uses_unlabeled else 0
        self.sampler = TwoStreamSampler(len(self.data.labeled), len(self.data.unlabeled), c.train.labeled_batch_size,
                                        unlabeled_batch, c.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(c.seed)
        fill = self.data.ignore_index if self.data.ignore_index is not None else 0
        self.augment = Augmenter(c.train.augment, self.data.spatial_dims, fill_label=fill)
        self.forward_a, self.forward_b = self.model_a, self.model_b
        if c.train.compile and self.device.type == "cuda":
            self.forward_a, self.forward_b = torch.compile(self.model_a), torch.compile(self.model_b)
        self.state = TrainState()
        if resume:
            self._load_last()

    def _check_data(self) -> None:
        d, c = self.data, self.cfg
        if len(d.labeled) == 0:
            raise DataError(f"dataset '{d.name}': the labeled training set is empty (check data.labeled_patients)")
        if c.method.name != "supervised" and len(d.unlabeled) == 0:
            raise DataError(f"dataset '{d.name}': method '{c.method.name}' needs unlabeled images but all training "
                            f"patients are labeled (lower data.labeled_patients)")
        if not d.val:
            raise DataError(f"dataset '{d.name}': the validation split is empty, so no checkpoint can be selected"
                            + (" (set data.val_patients)" if d.name == "la" else ""))
        divisor = 2 ** (c.model.levels - 1)
        if any(s % divisor for s in d.train_size):
            raise ConfigError(f"config key 'data.image_size': {list(d.train_size)} must be divisible by {divisor} "
                              f"for a U-Net with {c.model.levels} levels")

    # ------------------------------------------------------------------ run folder
    def _check_new_run_dir(self) -> None:
        kind = run_folder_kind(self.run_dir)
        if kind == "file":
            raise RunFolderError(f"run folder '{self.run_dir}' is a file, not a folder: choose another --out")
        if kind == "run":
            raise RunFolderError(f"run folder '{self.run_dir}' already holds a run: continue it with --resume, or choose another --out")
        if kind == "foreign":
            raise RunFolderError(f"folder '{self.run_dir}' is not empty and is not a coda-edu run folder (no checkpoints/): "
                                 f"coda-edu never writes over files it did not make; choose another --out")
        if kind == "started":
            # A run stopped before its first checkpoint: nothing in it can be resumed, so start it again in place.
            self.log(f"restarting {self.run_dir} in place (the earlier run stopped before its first checkpoint)")
            for stale in (self.metrics_path, self.ckpt_dir / "best.pt", self.run_dir / "eval.json",
                          self.run_dir / "eval_cases.jsonl"):
                stale.unlink(missing_ok=True)
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder '{self.run_dir}': {exc.strerror}") from None

    def _config_for_resume(self) -> Config:
        path = self.run_dir / "config.yaml"
        last = self.ckpt_dir / "last.pt"
        if not last.is_file():
            if run_folder_kind(self.run_dir) == "started":
                again = f"coda-edu train --config {path} --out {self.run_dir}" if path.is_file() else \
                    f"coda-edu train --out {self.run_dir} with the run's --config/--set"
                raise RunFolderError(f"cannot resume: '{self.run_dir}' has no checkpoints/last.pt (the run stopped before its "
                                     f"first checkpoint); start it again in place, without --resume: {again}")
            raise RunFolderError(f"cannot resume: '{self.run_dir}' has no checkpoints/last.pt and config.yaml")
        if not path.is_file():
            raise RunFolderError(f"cannot resume: '{self.run_dir}' has checkpoints/last.pt but no config.yaml")
        cfg = read_run_config(self.run_dir)
        # Resume means the same run: the folder's config.yaml must be the config the checkpoint was trained with.
        stored = load_checkpoint(last).get("config")
        if not isinstance(stored, dict):
            raise RunFolderError(f"checkpoint '{last}' holds no config, so it cannot be checked against '{path}'")
        try:
            stored = resolve(from_dict(stored)).to_dict()
        except ConfigError as exc:
            raise RunFolderError(f"checkpoint '{last}': its stored config is invalid ({exc})") from None
        differ = config_differences(stored, resolve(cfg).to_dict())
        if differ:
            shown = ", ".join(differ[:8]) + (f" and {len(differ) - 8} more" if len(differ) > 8 else "")
            raise RunFolderError(f"cannot resume: '{path}' differs from the config stored in checkpoints/last.pt at {shown}; "
                                 f"a resumed run must be the same run: undo the edit, or start a new run in another --out")
        return cfg

    def _load_last(self) -> None:
        path = self.ckpt_dir / "last.pt"
        ckpt = load_checkpoint(path, map_location=self.device)
        try:
            self.model_a.load_state_dict(ckpt["model_a"])
            self.model_b.load_state_dict(ckpt["model_b"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scaler.load_state_dict(ckpt["scaler"])
            self.algorithm.load_state_dict(ckpt["algorithm"])
            self.sampler.load_state_dict(ckpt["sampler"])
            set_rng_state(ckpt["rng"], self.generator)
            self.state = TrainState(**ckpt["state"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise RunFolderError(f"checkpoint '{path}' does not fit this run ({type(exc).__name__}: {detail})") from None
        self._saved_step = self.state.step
        # Forget whatever the killed run logged after its last checkpoint.
        truncate_jsonl(self.metrics_path, lambda row: row.get("step", 0) <= self.state.step, warn=warn_line)
        self.log(f"resuming {self.run_dir} at step {self.state.step}")

    def _nonfinite(self, with_optimizer: bool = False) -> list[str]:
        """Which of network A, network B (and the optimiser state) hold NaN or inf values."""
        groups = [("network A", list(self.model_a.state_dict().values())),
                  ("network B", list(self.model_b.state_dict().values()))]
        if with_optimizer:
            groups.append(("the optimiser state", [v for st in self.optimizer.state.values() for v in st.values()
                                                   if isinstance(v, torch.Tensor)]))
        bad = []
        for name, tensors in groups:
            flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
            if flags and not bool(torch.stack(flags).all()):
                bad.append(name)
        return bad

    def _refuse_nonfinite(self, what: str, since: int) -> None:
        kept = (f"the checkpoints in '{self.ckpt_dir}' are from step {self._saved_step} and were kept"
                if getattr(self, "_saved_step", None) is not None else "no checkpoint was written")
        raise DivergedError(f"training diverged between steps {since + 1} and {self.state.step}: {what} became NaN or inf; "
                            f"lower optim.lr or method.lambda_max; {kept}")

    def _save_last(self) -> None:
        bad = self._nonfinite(with_optimizer=True)
        if bad:  # never replace a good checkpoint with a broken one
            self._refuse_nonfinite(" and ".join(bad), getattr(self, "_saved_step", None) or 0)
        save_checkpoint(self.ckpt_dir / "last.pt", {
            "step": self.state.step, "config": self.cfg.to_dict(),
            "model_a": self.model_a.state_dict(), "model_b": self.model_b.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "algorithm": self.algorithm.state_dict(), "sampler": self.sampler.state_dict(),
            "rng": rng_state(self.generator), "state": vars(self.state).copy(),
        })
        self._saved_step = self.state.step

    def _save_best(self, scores: dict) -> None:
        bad = self._nonfinite()
        if bad:
            self._refuse_nonfinite(" and ".join(bad), getattr(self, "_saved_step", None) or 0)
        save_checkpoint(self.ckpt_dir / "best.pt", {
            "step": self.state.step, "config": self.cfg.to_dict(), "scores": scores,
            "model_a": self.model_a.state_dict(), "model_b": self.model_b.state_dict(),
        })

    # ------------------------------------------------------------------ training
    def next_batch(self) -> Batch:
        """Draw, gather and augment one two-stream batch (all tensor ops on the device)."""
        idx_l, idx_u = self.sampler.next_indices()
        x_l, y_l = self.data.labeled.batch(idx_l, self.generator)
        if idx_u is None:
            x, y = self.augment(x_l, y_l, self.generator)
            return Batch(x.contiguous(memory_format=self.memory_format), y)
        x_u, y_u = self.data.unlabeled.batch(idx_u, self.generator)
        n_l = x_l.shape[0]
        y_all = torch.cat([y_l, y_u if y_u is not None else torch.zeros_like(y_l[:1]).expand(x_u.shape[0], *y_l.shape[1:])])
        x, y = self.augment(torch.cat([x_l, x_u]), y_all, self.generator)
        x = x.contiguous(memory_format=self.memory_format)
        return Batch(x[:n_l], y[:n_l], x[n_l:], y[n_l:] if y_u is not None else None)

    def train_step(self, diagnostics: bool = False) -> dict:
        """One optimisation step; returns the algorithm's logs (tensors)."""
        c = self.cfg
        lr = poly_lr(c.optim.lr, self.state.step, c.train.iterations, c.optim.poly_power) if c.optim.schedule == "poly" else c.optim.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.next_batch()
        self.model_a.train()
        self.model_b.train(self.algorithm.trains_b)
        with self.precision.autocast():
            loss, logs = self.algorithm.training_step(self.forward_a, self.forward_b, batch, self.state.step, diagnostics)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.algorithm.after_optimizer_step(self.model_a, self.model_b, self.state.step)
        self.state.step += 1
        logs["lr"] = lr
        return logs

    def validate(self) -> dict:
        from .evaluate import validation_scores

        e = self.cfg.eval
        return validation_scores(self.model_a, self.model_b, self.data, self.device, self.precision, e.batch_size, e.overlap)

    def fit(self) -> TrainState:
        c = self.cfg
        if self.state.step == 0:
            save_config(c, self.run_dir / "config.yaml")
            self.log(f"run folder: {self.run_dir}")
            self.log(f"data: {self.data.summary()}")
            self.log(f"method: {c.method.name} (alignment={c.method.alignment}, filter={c.method.filter}) "
                     f"on {describe(self.device)}, {self.precision.name}")
        total = c.train.iterations
        bar = progress_bar(total=total, initial=self.state.step, desc=f"{c.method.name}", enabled=self.progress, unit="step")
        segment_start = time.perf_counter()
        postfix = {"loss": "-", "val": "-"}
        # Every step's loss is checked on the device (no host sync); the flag is read on logged steps
        # and before every checkpoint, and the weights are checked before every checkpoint write.
        finite = torch.ones((), dtype=torch.bool, device=self.device)
        checked = weights_checked = self.state.step
        try:
            while self.state.step < total:
                step = self.state.step + 1
                logs = self.train_step(diagnostics=step % c.train.log_every == 0 or step == total)
                loss = logs.get("loss")
                if isinstance(loss, torch.Tensor):
                    finite = finite & torch.isfinite(loss.detach()).all()
                bar.update(1)
                logged, validated = step % c.train.log_every == 0 or step == total, step % c.train.val_every == 0 or step == total
                if logged or validated:
                    if not bool(finite):
                        self._refuse_nonfinite("the loss", checked)
                    checked = step
                if logged:
                    row = {"kind": "train", "step": step, **_numbers(logs)}
                    if not math.isfinite(row.get("loss", 0.0)):
                        raise CodaEduError(f"training diverged at step {step} (loss is {row['loss']}); lower optim.lr or "
                                           f"method.lambda_max; the last checkpoint is in {self.ckpt_dir}")
                    append_jsonl(self.metrics_path, [row])
                    postfix["loss"] = f"{row['loss']:.3f}"
                    bar.set_postfix(postfix, refresh=False)
                if validated:
                    bad = self._nonfinite(with_optimizer=True)
                    if bad:
                        self._refuse_nonfinite(" and ".join(bad), weights_checked)
                    weights_checked = step
                    val_start = time.perf_counter()
                    self.state.train_seconds += val_start - segment_start
                    scores = self.validate()
                    selected = scores[c.eval.select_model]["mean"]
                    improved = selected is not None and not math.isnan(selected) and selected > self.state.best_score
                    if improved:
                        self.state.best_score, self.state.best_step = selected, step
                    append_jsonl(self.metrics_path, [{"kind": "val", "step": step, "seconds": round(self.state.train_seconds, 2),
                                                      "val_seconds": round(self.state.val_seconds, 2),
                                                      "dice": {m: scores[m] for m in scores}, "selected": selected,
                                                      "best_step": self.state.best_step}])
                    if improved or not (self.ckpt_dir / "best.pt").exists():
                        self._save_best(scores)
                    self.state.val_seconds += time.perf_counter() - val_start
                    self._save_last()
                    postfix["val"] = f"{selected:.3f}"
                    bar.set_postfix(postfix, refresh=True)
                    segment_start = time.perf_counter()
        finally:
            bar.close()
        return self.state

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict:
        from .report import evaluate_run

        return evaluate_run(self.run_dir, self.cfg, self.data, self.model_a, self.model_b, self.device, self.precision,
                            progress=self.progress, train_seconds=self.state.train_seconds, log=self.log)


def train(cfg: Config, out: str | Path | None = None, *, resume: bool = False, progress: bool = True,
          evaluate: bool = True, data: SegmentationData | None = None, log: Callable[[str], None] = print) -> RunResult:
    """Train (or resume) a run and evaluate it; returns the run folder, final state and evaluation."""
    run_dir = Path(out) if out is not None else default_run_dir(cfg)
    # The run folder is locked for the whole run (a second train/resume/eval of it is refused).
    kind = run_folder_kind(run_dir)
    if kind == "file":
        raise RunFolderError(f"run folder '{run_dir}' is a file, not a folder: choose another --out")
    if kind == "foreign" and not resume:
        raise RunFolderError(f"folder '{run_dir}' is not empty and is not a coda-edu run folder (no checkpoints/): "
                             f"coda-edu never writes over files it did not make; choose another --out")
    if not resume:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder '{run_dir}': {exc.strerror or exc}") from None
    lock = lock_run_folder(run_dir, "train --resume" if resume else "train") if run_dir.is_dir() else None
    try:
        trainer = Trainer(cfg, run_dir, resume=resume, progress=progress, data=data, log=log)
        state = trainer.fit()
        evaluation = trainer.evaluate() if evaluate else None
    finally:
        if lock is not None:
            lock.release()
    return RunResult(run_dir, state, evaluation, trainer.data)
