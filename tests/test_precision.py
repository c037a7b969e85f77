"""train.precision=fp64, the testing and debugging precision: float64 networks, batches, statistics
and losses (no float32 cast on the way), the same maths as fp32, and the run folder still evaluates."""

import pytest
import torch

from coda_edu.beyond import apply_log_offsets, hard_count_weights, match_argmax_shares
from coda_edu.config import load_config
from coda_edu.device import resolve_precision
from coda_edu.errors import ConfigError
from coda_edu.method import (
    align_distribution,
    class_expectations,
    class_marginal,
    ema_update,
    masked_cross_entropy,
    pseudo_labels,
    supervised_loss,
)
from coda_edu.method.dtypes import widen
from coda_edu.trainer import Trainer
from tests.conftest import tiny_overrides


def test_fp64_is_a_precision_of_its_own_and_not_on_apple_mps():
    p = resolve_precision(torch.device("cpu"), "fp64")
    assert (p.name, p.compute, p.dtype, p.needs_scaler) == ("fp64", torch.float64, None, False)
    assert resolve_precision(torch.device("cpu"), "fp32").compute == torch.float32
    with pytest.raises(ConfigError, match="train.precision"):
        resolve_precision(torch.device("mps"), "fp64")


def test_widen_keeps_float64_and_lifts_the_rest_to_float32():
    assert widen(torch.ones(2, dtype=torch.float64)).dtype == torch.float64
    for dtype in (torch.bfloat16, torch.float16, torch.float32, torch.bool, torch.int64):
        assert widen(torch.ones(2, dtype=dtype)).dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_statistics_and_losses_keep_the_dtype_of_their_input(dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 5, generator=g, dtype=dtype)
    target = torch.randint(0, 3, (2, 6, 5), generator=g)
    probs = torch.softmax(logits, 1)
    confidence, labels = pseudo_labels(probs)
    marginal = class_marginal(probs)
    outputs = {
        "class_marginal": marginal,
        "class_marginal valid": class_marginal(probs, target > 0),
        "ema_update": ema_update(marginal, marginal, 0.9),
        "align_distribution": align_distribution(probs, marginal, marginal.flip(0)),
        "class_expectations": class_expectations(confidence, labels, 3),
        "match_argmax_shares": match_argmax_shares(probs, torch.full((3,), 1 / 3)),
        "apply_log_offsets": apply_log_offsets(probs, torch.zeros(3, dtype=dtype)),
        "hard_count_weights": hard_count_weights(marginal, marginal.flip(0)),
        "supervised_loss": supervised_loss(logits, target),
        "masked_cross_entropy": masked_cross_entropy(logits, labels, confidence > 0.5),
    }
    assert {k: v.dtype for k, v in outputs.items()} == {k: dtype for k in outputs}


def test_an_fp64_trainer_runs_the_fp32_maths_in_float64_and_validates(tmp_path):
    steps = {}
    for precision in ("fp32", "fp64"):
        cfg = load_config(None, tiny_overrides(**{"model.dropout": "false", "train.precision": precision}))
        trainer = Trainer(cfg, tmp_path / precision, progress=False, log=lambda m: None)
        steps[precision] = [trainer.train_step() for _ in range(2)]
    assert {p.dtype for p in trainer.model_a.parameters()} == {torch.float64}
    assert trainer.batches.next().x_u.dtype == torch.float64
    assert trainer.algorithm.trackers["A"].pi_u.dtype == torch.float64
    assert all(v.dtype == torch.float64 for k, v in steps["fp64"][1].items() if k in ("loss", "sup_A", "unsup_B"))
    for fp32, fp64 in zip(steps["fp32"], steps["fp64"]):  # the same maths, rounded less
        assert fp64["loss"].item() == pytest.approx(fp32["loss"].item(), rel=1e-5)
    scores = trainer.validate()  # the evaluation feeds the float64 networks float64 images
    assert 0.0 <= scores["ensemble"]["mean"] <= 1.0


def test_the_bf16_warning_names_only_bf16_on_a_cpu_known_to_lack_it():
    from coda_edu.device import Precision, cpu_bf16_warning

    cpu_bf16 = resolve_precision(torch.device("cpu"), "bf16")
    message = cpu_bf16_warning(cpu_bf16, native=False)
    assert message is not None and "train.precision=bf16" in message and "fp32" in message
    assert "\n" not in message
    assert cpu_bf16_warning(cpu_bf16, native=True) is None
    assert cpu_bf16_warning(cpu_bf16, native=None) is None  # cannot tell (not x86): say nothing
    assert cpu_bf16_warning(resolve_precision(torch.device("cpu"), "fp32"), native=False) is None
    assert cpu_bf16_warning(Precision("cuda", torch.bfloat16), native=False) is None


def test_native_cpu_bf16_agrees_with_the_kernels_cpu_flags():
    import platform
    from pathlib import Path

    from coda_edu.device import native_cpu_bf16

    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() != "x86_64" or not cpuinfo.exists():
        pytest.skip("needs an x86-64 Linux machine to read the CPU's flags from /proc/cpuinfo")
    flags = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    assert native_cpu_bf16() is bool({"avx512_bf16", "amx_tile"} & flags)


@pytest.mark.parametrize("native", [False, True])
def test_a_bf16_run_on_a_cpu_without_native_bf16_warns_once_on_stderr(tmp_path, monkeypatch, capsys, native):
    import coda_edu.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "native_cpu_bf16", lambda: native)
    cfg = load_config(None, tiny_overrides(**{"train.precision": "bf16", "train.iterations": 2, "train.val_every": 2}))
    Trainer(cfg, tmp_path / "run", progress=False, log=lambda m: None).fit()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "without native bf16" in line]
    assert len(warnings) == (0 if native else 1)
    assert all(line.startswith("coda-edu: warning: train.precision=bf16") for line in warnings)
