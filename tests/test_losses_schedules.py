import math

import pytest
import torch
import torch.nn.functional as F

from coda_edu.method.losses import cross_entropy, masked_cross_entropy, soft_dice_loss, supervised_loss
from coda_edu.method.schedules import sigmoid_rampup, unsupervised_weight
from coda_edu.optim import poly_lr


def test_soft_dice_is_zero_for_a_confident_correct_prediction_and_high_when_wrong():
    target = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    perfect = F.one_hot(target, 3).movedim(-1, 1).float() * 50
    assert soft_dice_loss(perfect, target) < 1e-4
    wrong = F.one_hot((target + 1) % 3, 3).movedim(-1, 1).float() * 50
    assert soft_dice_loss(wrong, target) > 0.99


def test_supervised_loss_is_half_ce_plus_dice():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 6, generator=g)
    target = torch.randint(0, 4, (2, 6, 6), generator=g)
    expected = 0.5 * (F.cross_entropy(logits, target) + soft_dice_loss(logits, target))
    assert torch.allclose(supervised_loss(logits, target), expected)


def test_ignore_index_is_excluded():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 4, 4, generator=g)
    target = torch.randint(0, 3, (1, 4, 4), generator=g)
    ignored = target.clone()
    ignored[0, 0] = 255
    keep = ignored != 255
    ce = cross_entropy(logits, ignored, ignore_index=255)
    assert torch.allclose(ce, F.cross_entropy(logits.movedim(1, -1)[keep], target[keep]))
    assert torch.isfinite(soft_dice_loss(logits, ignored, ignore_index=255))


def test_masked_cross_entropy_normalisations():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=g)
    target = torch.randint(0, 3, (2, 4, 4), generator=g)
    ones = torch.ones_like(target, dtype=torch.bool)
    assert torch.allclose(masked_cross_entropy(logits, target, ones), F.cross_entropy(logits, target))
    mask = torch.zeros_like(ones)
    mask[0, :2] = True
    per_pixel = F.cross_entropy(logits, target, reduction="none")
    assert torch.allclose(masked_cross_entropy(logits, target, mask, "all"), per_pixel[mask].sum() / mask.numel())
    assert torch.allclose(masked_cross_entropy(logits, target, mask, "kept"), per_pixel[mask].mean())
    assert masked_cross_entropy(logits, target, torch.zeros_like(ones), "kept") == 0


def test_sigmoid_rampup_and_weight():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(100, 100) == 1.0 and sigmoid_rampup(500, 100) == 1.0
    assert sigmoid_rampup(3, 0) == 1.0
    values = [sigmoid_rampup(t, 100) for t in range(0, 101, 10)]
    assert values == sorted(values)
    assert unsupervised_weight(100, 0.5, 100) == 0.5


def test_poly_lr():
    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 50, 100, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100) == 0.0


def test_soft_dice_ignores_ignored_pixels_in_the_target_too():
    # Regression (issue 9): the one-hot target was not masked, so ignored pixels counted
    # as class-0 ground truth and perfect logits gave 0.111 instead of 0.
    target = torch.tensor([[[0, 1, 2, 1], [2, 0, 1, 2]]])
    perfect = F.one_hot(target, 3).movedim(-1, 1).float() * 50
    ignored = target.clone()
    ignored[0, 0, 0] = 255
    ignored[0, 1, 1] = 255
    assert soft_dice_loss(perfect, ignored, ignore_index=255) < 1e-4
    # and an ignored pixel is no evidence for or against any class
    other = perfect.clone()
    other[0, :, 0, 0] = torch.tensor([0.0, 50.0, 0.0])
    assert soft_dice_loss(other, ignored, ignore_index=255) == pytest.approx(
        soft_dice_loss(perfect, ignored, ignore_index=255).item(), abs=1e-6
    )


def test_supervised_loss_kinds():
    # 'ce' is cross-entropy alone; 'ce_dice' the mean of CE and soft Dice; anything else is refused.
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    ce = cross_entropy(logits, target)
    dice = soft_dice_loss(logits, target)
    assert supervised_loss(logits, target, kind="ce") == pytest.approx(ce.item())
    assert supervised_loss(logits, target) == pytest.approx(0.5 * (ce + dice).item())
    with pytest.raises(ValueError, match="supervised loss kind"):
        supervised_loss(logits, target, kind="dice")


def test_the_supervised_loss_is_chosen_by_the_config():
    from coda_edu.config import load_config
    from coda_edu.registry import METHODS

    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8)
    target = torch.randint(0, 4, (2, 8, 8))
    for kind, expected in (("ce", cross_entropy(logits, target)), ("ce_dice", supervised_loss(logits, target))):
        cfg = load_config(None, ["method.name=supervised", f"method.supervised_loss={kind}"])
        algorithm = METHODS.get(cfg.method.name).build(cfg, 4, None)
        assert algorithm.supervised(logits, target) == pytest.approx(expected.item())
