"""The fast training path: the multi-tensor optimiser step (optim.fused) trains like the plain one, and a
training step that logs nothing holds no host synchronisation (every method and option)."""

import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from coda_edu.config import load_config
from coda_edu.trainer import Trainer
from tests.conftest import tiny_overrides

BASE = {"model.dropout": "false", "train.iterations": 20}


def make_trainer(tmp_path, name, data=None, logs=None, **overrides):
    cfg = load_config(None, tiny_overrides(**{**BASE, **overrides}))
    sink = logs.append if logs is not None else (lambda message: None)
    return Trainer(cfg, tmp_path / name, progress=False, data=data, log=sink)


def run_steps(trainer, n=5):
    return [trainer.train_step()["loss"].item() for _ in range(n)]


def test_the_multi_tensor_optimiser_step_trains_like_the_plain_one(tmp_path):
    plain = make_trainer(tmp_path, "plain", **{"optim.name": "adamw", "optim.lr": "0.001"})
    quick = make_trainer(
        tmp_path, "fast", data=plain.data, **{"optim.name": "adamw", "optim.lr": "0.001", "optim.fused": "true"}
    )
    losses_plain, losses_fast = run_steps(plain), run_steps(quick)
    assert losses_plain[0] != losses_plain[-1]  # it trains
    assert losses_fast == pytest.approx(losses_plain, rel=1e-4, abs=1e-6)
    for net_plain, net_fast in ((plain.model_a, quick.model_a), (plain.model_b, quick.model_b)):
        fast_state = net_fast.state_dict()
        for key, value in net_plain.state_dict().items():
            torch.testing.assert_close(fast_state[key], value, rtol=1e-3, atol=1e-5)


def test_optim_fused_picks_foreach_off_cuda(tmp_path):
    trainer = make_trainer(tmp_path, "run", **{"optim.fused": "true"})
    assert trainer.optimizer.defaults["foreach"] is True and not trainer.optimizer.defaults.get("fused")
    assert not make_trainer(tmp_path, "plain").optimizer.defaults["foreach"]


# --------------------------------------------------------------------------- host synchronisations
# On CUDA these operations make the host wait for the GPU: reading a value (.item(), bool(t), float(t)),
# sizing an output by the data (nonzero, boolean-mask indexing, bincount, unique, masked_select), and a
# tensor made from Python data (lift_fresh: torch.tensor(x, device=...) is a blocking host-to-device copy).
SYNCING = {
    "_local_scalar_dense",
    "nonzero",
    "bincount",
    "masked_select",
    "_unique2",
    "unique_dim",
    "is_nonzero",
    "lift_fresh",
}


class SyncSpy(TorchDispatchMode):
    """Records the syncing operations a piece of code dispatches (on any device, so the CPU tests see
    what would wait on CUDA), with the coda_edu source line that caused each."""

    def __init__(self):
        super().__init__()
        self.found = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        mask_index = func.overloadpacket in (torch.ops.aten.index, torch.ops.aten.index_put) and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
        )
        if name in SYNCING or mask_index:
            frames = [f for f in traceback.extract_stack() if "coda_edu" in f.filename]
            line = frames[-1].line if frames else ""
            # torch checks one_hot's class values with .item() on the CPU only (on CUDA: a device assert)
            if not (name == "_local_scalar_dense" and "one_hot(" in line):
                self.found.append(f"{name} at {frames[-1].filename}:{frames[-1].lineno}" if frames else name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"optim.fused": "true"},
        {"method.mix": "copy_paste", "method.ema_teacher": 0.99, "method.unsupervised_loss": "oece_dice"},
        {"method.mix": "cutmix", "method.strong_intensity": 0.3},
        {"method.alignment": "hard_counts"},
        {"method.alignment": "argmax_share"},
        {"method.alignment": "labels", "method.filter": "fixed", "method.loss_normalization": "kept"},
        {"method.name": "cps"},
        {"method.name": "supervised"},
        {"method.name": "mean_teacher"},
    ],
)
def test_a_training_step_that_logs_nothing_holds_no_host_sync(tmp_path, overrides):
    trainer = make_trainer(tmp_path, "run", **overrides)
    trainer.train_step()  # first step: EMAs start
    spy = SyncSpy()
    with spy:
        logs = trainer.train_step()
    assert spy.found == []
    assert isinstance(logs["loss"], torch.Tensor)  # the loss stays on the device until a logged step


def test_the_sync_spy_sees_reads_and_data_sized_outputs():
    t = torch.arange(4.0)
    with SyncSpy() as spy:
        t[t > 1].sum()
        float(t.sum())
        torch.bincount(t.long())
        torch.tensor(3.0, device=t.device)
    assert spy.found == ["index", "_local_scalar_dense", "bincount", "lift_fresh"]


@pytest.fixture
def world_of_one(monkeypatch):
    """Call it to take the multi-process code paths in this one process: ``active()`` is True (so
    sharded_step() sums, GlobalBatchNorm reduces, sum_gradients all-reduces) and all_reduce is the
    sum over one rank. Returns coda_edu.distributed."""
    import coda_edu.distributed as distributed

    def enter():
        monkeypatch.setattr(distributed, "active", lambda: True)
        monkeypatch.setattr(distributed.dist, "all_reduce", lambda tensor, *args, **kwargs: None)
        return distributed

    return enter


@pytest.mark.parametrize(
    "overrides",
    [{}, {"method.alignment": "argmax_share", "method.filter": "fixed"}, {"method.name": "mean_teacher"}],
)
def test_the_multi_process_reductions_hold_no_host_sync(tmp_path, world_of_one, overrides):
    trainer = make_trainer(tmp_path, "run", **overrides)  # built in one process: plain batch norm
    world_of_one()
    trainer.train_step()
    with SyncSpy() as spy:
        logs = trainer.train_step()  # global_sum, global_count, class_marginal... of a sharded step
    assert spy.found == []
    assert torch.isfinite(logs["loss"])


def test_global_batch_norm_holds_no_host_sync_and_is_batch_norm_in_a_world_of_one(world_of_one):
    distributed = world_of_one()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 6, generator=g, requires_grad=True)
    plain = torch.nn.BatchNorm2d(4)
    synced = distributed._to_global_bn(torch.nn.Sequential(torch.nn.BatchNorm2d(4)))[0]
    assert isinstance(synced, distributed.GlobalBatchNorm)
    with SyncSpy() as spy:
        y = synced(x)
        y.square().sum().backward()
    assert spy.found == []
    grad, x.grad = x.grad, None
    expected = plain(x)
    expected.square().sum().backward()
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(grad, x.grad)
    torch.testing.assert_close(synced.running_var, plain.running_var)


def test_counting_without_host_sync_gives_bincounts_results():
    from coda_edu.method.alignment import class_counts, class_marginal, label_marginal

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (2, 9, 7), generator=g)
    labels[0, 0, :3] = 255  # an ignore index
    probs = torch.softmax(torch.randn(2, 4, 9, 7, generator=g), 1)
    valid = labels != 255
    with SyncSpy() as spy:
        counts = class_counts(labels.clamp_max(3), 4)
        kept = class_counts(labels.clamp_max(3), 4, valid)
        freq = label_marginal(labels, 4, ignore_index=255)
        empty = label_marginal(torch.full((3,), 255), 4, ignore_index=255)
        marginal = class_marginal(probs, valid)
        none_valid = class_marginal(probs, torch.zeros_like(valid))
    assert spy.found == []
    assert torch.equal(counts, torch.bincount(labels.clamp_max(3).flatten(), minlength=4))
    assert torch.equal(kept, torch.bincount(labels.clamp_max(3)[valid], minlength=4))
    in_range = labels[(labels != 255) & (labels < 4)]
    torch.testing.assert_close(freq, torch.bincount(in_range, minlength=4).float() / in_range.numel())
    torch.testing.assert_close(empty, torch.full((4,), 0.25))
    torch.testing.assert_close(marginal, probs.movedim(1, -1)[valid].mean(0))
    torch.testing.assert_close(none_valid, torch.full((4,), 0.25))
