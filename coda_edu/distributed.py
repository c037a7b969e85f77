r"""One run across several processes: ``torchrun --nproc_per_node N -m coda_edu.cli train ...``.

Everything the loop needs to train one run on N processes (N GPUs, or N CPU processes
with the gloo backend) lives here; in one process every helper is a no-op, so the
single-process loop reads as before. How the pieces fit:

- **Process group.** :func:`init_from_env` joins the group torchrun describes in the
  environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``):
  nccl on CUDA (rank r uses ``cuda:LOCAL_RANK``, :func:`rank_device`), gloo on the CPU.
- **The global batch.** Every rank draws the *same* global batch (same sampler, same
  seeded augmentation generator) and keeps its shard
  (:meth:`coda_edu.data.sampling.TwoStreamSampler.shard_slices`), so the shards are exact
  slices of the batch one process would train on.
- **Statistics and losses of the global batch.** Inside :func:`sharded_step`, the
  method's pure functions (:mod:`coda_edu.method`) sum their per-rank sums and counts
  with :func:`global_sum` before dividing (sum-then-divide, exact for uneven shards):
  class marginals, argmax shares, class expectations, the cross-entropies' numerators
  and denominators, the soft Dice's intersections and denominators. A loss built from
  global sums has, on every rank, the value of the global-batch loss :math:`L`; its
  gradient flows through the rank's own terms only (:func:`global_sum`), so the sum over
  ranks of the per-rank gradients is :math:`\nabla L` (:func:`sum_gradients`).
- **Batch norm.** :func:`sync_batchnorm` makes BN use the global batch's statistics:
  ``torch.nn.SyncBatchNorm`` on CUDA; :class:`GlobalBatchNorm` on the CPU, where torch's
  does not run.
- **Files.** Rank 0 alone writes the run folder and holds its lock; the others read it
  (resume) and wait at :func:`barrier` while rank 0 validates, checkpoints and evaluates.

Outside :func:`sharded_step` (evaluation, notebooks, analysis) nothing is reduced.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn

# How long a rank waits at a collective (rank 0 validating or evaluating meanwhile) before giving up.
TIMEOUT = timedelta(minutes=int(os.environ.get("CODA_EDU_DIST_TIMEOUT_MIN", "60")))

_sharded = False  # inside sharded_step() of a run with several processes


# --------------------------------------------------------------------------- process group
def launched() -> bool:
    """Whether this process was started by torchrun (or alike) as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """A process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device_type: str) -> bool:
    """Join the process group torchrun described in the environment (nccl when the run trains on
    CUDA, else gloo). Returns True when this call started it (end it with :func:`shutdown`)."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return False
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=TIMEOUT)
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` under torchrun on CUDA, else ``device``."""
    if active() and device.type == "cuda":
        return torch.device("cuda", local_rank())
    return device


def rank_seed(seed: int) -> int:
    """Seed of this rank's global random streams (dropout, mean-teacher noise): ``seed`` on rank 0,
    an offset one on the others, so the shards do not share their dropout masks."""
    return seed + 1_000_003 * rank()


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (a run folder path, an error)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (the random states for last.pt)."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def raise_if_failed(error: BaseException | None) -> None:
    """Rank 0 checked something (the run folder) and maybe failed: every rank raises its error."""
    error = broadcast_object(error)
    if error is not None:
        raise error


# --------------------------------------------------------------------------- the global batch
@contextlib.contextmanager
def sharded_step():
    """Within: :func:`global_sum` sums over the ranks (each holds one shard of the step's batch)."""
    global _sharded
    previous, _sharded = _sharded, active()
    try:
        yield
    finally:
        _sharded = previous


class _AllSum(torch.autograd.Function):
    r"""Differentiable all-reduce: :math:`y = \sum_r x_r` on every rank; backward sums the ranks'
    upstream gradients (each rank's :math:`y` feeds that rank's loss)."""

    @staticmethod
    def forward(ctx, x):
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def global_sum(x: torch.Tensor) -> torch.Tensor:
    r"""Sum of ``x`` over the ranks inside :func:`sharded_step`, else ``x`` itself.

    The value is :math:`S = \sum_r x_r`, the same on every rank; the gradient flows through
    this rank's own :math:`x_r` only (:math:`S = x_r + \mathrm{sg}(S - x_r)`). A loss
    :math:`L(S)` then has the global-batch value everywhere, and :math:`\sum_r \nabla_r = \nabla L`.
    """
    if not _sharded:
        return x
    total = x.detach().clone()
    dist.all_reduce(total)
    return total + (x - x.detach()) if x.requires_grad else total


def global_count(n: int, like: torch.Tensor):
    r"""``n`` items on this rank -> the number over the ranks, :math:`\sum_r n_r` (``n`` itself outside
    :func:`sharded_step`), as a scalar tensor of ``like``'s float dtype (float32 for integer or boolean
    ``like``) on its device. Built by ``torch.full`` (the count travels as a kernel argument): a tensor
    made from a Python number would be a blocking host-to-device copy on CUDA."""
    if not _sharded:
        return n
    dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
    return global_sum(torch.full((), float(n), dtype=dtype, device=like.device))


def global_mean(x: torch.Tensor) -> torch.Tensor:
    r"""Mean of all elements of ``x`` over the ranks: :math:`\sum_r \sum_i x_{ri} / \sum_r n_r`."""
    if not _sharded:
        return x.mean()
    return global_sum(x.sum()) / global_count(x.numel(), x)


# --------------------------------------------------------------------------- gradients and weights
@torch.no_grad()
def sum_gradients(params) -> None:
    r"""Sum the gradients over the ranks (one all-reduce of all of them, flattened): with the losses
    of :func:`global_sum`, the result on every rank is the gradient of the global-batch loss."""
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


@torch.no_grad()
def broadcast_module(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (they start equal anyway: same seeds)."""
    if not active():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    r"""Batch norm over the global batch of all ranks, for the CPU (gloo), where
    ``torch.nn.SyncBatchNorm`` does not run. Per channel, two exact passes:

    .. math:: \mu = \frac{\sum_r \sum_i x_{ri}}{\sum_r n_r},\qquad
              \sigma^2 = \frac{\sum_r \sum_i (x_{ri} - \mu)^2}{\sum_r n_r},\qquad
              y = \gamma\,\frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    with differentiable all-reduces (:class:`_AllSum`), so gradients reach every rank's
    inputs through :math:`\mu` and :math:`\sigma^2`. The running statistics are updated
    like torch's (unbiased variance). Not training, or in one process, it is plain batch norm.
    Same parameters and buffers as ``BatchNorm{1,2,3}d`` (checkpoints load either way).
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x if x.dtype == torch.float64 else x.float()  # float32 statistics, float64 under fp64
        local_n = torch.full((1,), float(x.numel() // x.shape[1]), dtype=xf.dtype, device=x.device)  # no H2D copy
        summed = _AllSum.apply(torch.cat([xf.sum(dims), local_n]))
        n = summed[-1].detach()
        mean = summed[:-1] / n
        centred = xf - mean.view(shape)
        var = _AllSum.apply((centred * centred).sum(dims)) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
        return y.to(x.dtype)


def _to_global_bn(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        m = module
        out = GlobalBatchNorm(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
        out.load_state_dict(module.state_dict())
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _to_global_bn(child))
    return out


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with batch norm over the global batch when several processes train it (else unchanged)."""
    if not active():
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _to_global_bn(model)
