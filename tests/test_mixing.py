"""Copy-paste, cutmix and the strong intensity change of the unlabeled stream (coda_edu/data/mixing.py)."""

import math

import pytest
import torch

from coda_edu.config import load_config, resolve
from coda_edu.data.mixing import (
    copy_paste_regions,
    mix_plan,
    mixed_images,
    mixed_targets,
    paste,
    random_boxes,
    strong_intensity,
)
from coda_edu.method.base import Batch
from coda_edu.registry import METHODS
from coda_edu.trainer import Trainer
from tests.conftest import tiny_overrides


@pytest.mark.parametrize("size", [(12, 10), (6, 12, 10)])
def test_boxes_have_the_asked_side_and_lie_inside(size):
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(50, size, 0.5, generator=g)
    assert boxes.shape == (50,) + size and boxes.dtype == torch.bool
    sides = [math.ceil(0.5 * n) for n in size]
    for box in boxes:
        assert int(box.sum()) == math.prod(sides)
        for axis in range(len(size)):
            other = tuple(a for a in range(len(size)) if a != axis)
            covered = box.any(dim=other).nonzero().flatten()
            assert len(covered) == sides[axis] and int(covered[-1] - covered[0]) + 1 == sides[axis]
    # positions vary: not every box starts in the corner
    assert len({tuple(b.nonzero()[0].tolist()) for b in boxes}) > 1
    assert random_boxes(3, size, 1.0).all()
    with pytest.raises(ValueError):
        random_boxes(1, size, 0.0)


def test_paste_takes_the_source_inside_the_region_for_images_and_label_maps():
    region = torch.zeros(2, 4, 4, dtype=torch.bool)
    region[:, :2, :2] = True
    bg, src = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    mixed = paste(bg, src, region)
    assert (mixed[:, :, :2, :2] == 1).all() and mixed.sum() == 2 * 3 * 4
    labels = paste(torch.zeros(2, 4, 4, dtype=torch.long), torch.full((2, 4, 4), 3), region)
    assert (labels[:, :2, :2] == 3).all() and labels.sum() == 2 * 4 * 3


def test_copy_paste_regions_alternate_inward_and_outward():
    boxes = random_boxes(4, (8, 8), 0.5, generator=torch.Generator().manual_seed(1))
    regions = copy_paste_regions(boxes)
    assert torch.equal(regions[0], boxes[0]) and torch.equal(regions[2], boxes[2])
    assert torch.equal(regions[1], ~boxes[1]) and torch.equal(regions[3], ~boxes[3])


def test_strong_intensity_is_off_at_zero_seeded_and_keeps_the_ordering_of_a_noiseless_image():
    x = torch.linspace(0, 1, 64).view(1, 1, 8, 8).repeat(3, 1, 1, 1)
    assert strong_intensity(x, 0.0) is x
    a = strong_intensity(x, 0.5, torch.Generator().manual_seed(3))
    b = strong_intensity(x, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.allclose(a, x)
    # items get their own draw
    assert not torch.allclose(a[0], a[1])


def test_copy_paste_targets_are_the_truth_on_labeled_pixels_and_pseudo_labels_elsewhere():
    n_l, n_u = 2, 4
    y_l = torch.randint(0, 4, (n_l, 8, 8))
    y_l[0, 0, 0] = 255  # an ignored labeled pixel is no target
    batch = Batch(torch.randn(n_l, 1, 8, 8), y_l, torch.randn(n_u, 1, 8, 8))
    torch.manual_seed(0)
    plan = mix_plan("copy_paste", 0.667, n_l, batch.x_u)
    pseudo = torch.randint(0, 4, (n_u, 8, 8))
    kept = torch.rand(n_u, 8, 8) > 0.5
    target, keep, labeled = mixed_targets(plan, pseudo, kept, batch.y_l, ignore_index=255)
    region, partner = plan.region, plan.partner
    assert torch.equal(partner, torch.tensor([0, 1, 0, 1]))
    truth = y_l[partner]
    assert torch.equal(target[region & (truth != 255)], truth[region & (truth != 255)])
    assert torch.equal(target[~region], pseudo[~region])
    assert not (keep & region).any() and torch.equal(keep, kept & ~region)
    assert torch.equal(labeled, region & (truth != 255))
    mixed = mixed_images(plan, batch.x_l, batch.x_u)
    assert torch.equal(mixed[region.unsqueeze(1)], batch.x_l[partner][region.unsqueeze(1)])
    assert torch.equal(mixed[~region.unsqueeze(1)], batch.x_u[~region.unsqueeze(1)])


def test_cutmix_targets_mix_the_pseudo_labels_of_two_unlabeled_images():
    batch = Batch(torch.randn(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long), torch.randn(3, 1, 8, 8))
    plan = mix_plan("cutmix", 0.667, 2, batch.x_u)
    pseudo, kept = torch.randint(0, 4, (3, 8, 8)), torch.rand(3, 8, 8) > 0.3
    target, keep, labeled = mixed_targets(plan, pseudo, kept, batch.y_l, ignore_index=None)
    region = plan.region
    assert labeled is None
    assert torch.equal(target[region], pseudo[[2, 0, 1]][region]) and torch.equal(target[~region], pseudo[~region])
    assert torch.equal(keep[region], kept[[2, 0, 1]][region])


@pytest.mark.parametrize(
    "extra",
    [
        {"method.mix": "copy_paste"},
        {"method.mix": "cutmix", "method.mix_per_network": "false"},
        {"method.strong_intensity": 0.5},
        {"method.mix": "copy_paste", "method.name": "cps"},
        {"method.mix": "copy_paste", "method.pseudo_postprocess": "largest_component"},
        {"method.feature_dropout": 0.5},
        {"method.mix": "copy_paste", "method.feature_dropout": 0.5, "method.feature_view": "clean"},
    ],
)
def test_a_perturbed_step_trains_both_networks(tmp_path, extra):
    cfg = load_config(None, tiny_overrides(**extra, **{"train.device": "cpu"}))
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lambda m: None)
    before = [p.detach().clone() for p in trainer.model_b.parameters()]
    logs = trainer.train_step(diagnostics=True)
    assert torch.isfinite(logs["loss"]) and "shares_after_A" in logs
    if extra.get("method.mix") == "copy_paste":
        assert float(logs["mixed_sup"]) > 0  # the ground truth of the pasted pixels is learned
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model_b.parameters()))


@pytest.mark.parametrize("view", ["perturbed", "clean"])
def test_feature_dropout_acts_on_the_images_that_learn_a_pseudo_label_and_the_clean_view_halves_its_loss(
    tmp_path, view
):
    extra = {"method.feature_dropout": 0.5, "method.feature_view": view, "train.device": "cpu"}
    trainer = Trainer(load_config(None, tiny_overrides(**extra)), tmp_path / "run", progress=False, log=lambda m: None)
    calls = []  # (batch size, feature dropout, first perturbed item) of every forward pass of A and B

    def record(module, args, kwargs, out):
        calls.append((args[0].shape[0], kwargs.get("feature_dropout", 0.0), kwargs.get("perturbed_from", 0)))

    for net in (trainer.model_a, trainer.model_b):
        net.register_forward_hook(record, with_kwargs=True)
    unsupervised = []  # batch size of each unsupervised loss, in the order the step asks; value = its number

    def numbered(logits, labels, mask):
        unsupervised.append(logits.shape[0])
        return 0.0 * logits.sum() + float(len(unsupervised))

    trainer.algorithm.unsupervised = numbered
    logs = trainer.train_step()
    n_l, n_u = 2, 2  # tiny_overrides: batch 4, 2 of them labeled
    clean_passes = [(n_u, 0.0, 0)] * 2  # the pseudo-labels' pass: no feature dropout
    if view == "perturbed":  # [x_l, x~], the mixed view's features dropped; nothing added
        assert calls == clean_passes + [(n_l + n_u, 0.5, n_l)] * 2
        assert (float(logs["unsup_A"]), float(logs["unsup_B"])) == (1.0, 2.0)
    else:  # [x_l, x~, x_u], only the clean view's features dropped; each loss the mean of its two terms
        assert calls == clean_passes + [(n_l + 2 * n_u, 0.5, n_l + n_u)] * 2
        assert unsupervised == [n_u] * 4
        assert (float(logs["unsup_A"]), float(logs["unsup_B"])) == (1.5, 3.5)


def test_oece_dice_adds_the_soft_dice_of_the_kept_pixels_only():
    from coda_edu.method.losses import masked_cross_entropy, soft_dice_loss

    def built(loss):
        cfg = resolve(load_config(None, tiny_overrides(**{"method.unsupervised_loss": loss})))
        return METHODS.get(cfg.method.name).build(cfg, 3, None)  # with the refinement it turns on

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, generator=g)
    labels = torch.randint(0, 3, (2, 6, 6), generator=g)
    mask = torch.rand(2, 6, 6, generator=g) > 0.4
    oece = masked_cross_entropy(logits, labels, mask)
    kept = mask.flatten()
    flat_logits = logits.movedim(1, -1).reshape(-1, 3)[kept].T.reshape(1, 3, -1)
    dice_kept = soft_dice_loss(flat_logits, labels.flatten()[kept].view(1, -1))
    assert torch.allclose(built("oece_dice").unsupervised(logits, labels, mask), 0.5 * (oece + dice_kept), atol=1e-6)
    assert torch.allclose(built("oece").unsupervised(logits, labels, mask), oece)


def test_ema_teachers_follow_their_networks_and_resume_exactly(tmp_path, monkeypatch):
    from coda_edu.io import read_jsonl
    from coda_edu.train import train

    extra = {"method.ema_teacher": 0.9, "method.mix": "copy_paste", "train.device": "cpu", "train.log_every": 1}
    trainer = Trainer(load_config(None, tiny_overrides(**extra)), tmp_path / "t", progress=False, log=lambda m: None)
    teacher_a = trainer.algorithm.teachers["A"]
    start = {n: p.detach().clone() for n, p in teacher_a.named_parameters()}
    assert all(not p.requires_grad for p in teacher_a.parameters())
    trainer.train_step()
    # after one step each teacher weight is the warm-up EMA (mu_0 = 1/2) of its start and the student's
    for name, p in teacher_a.named_parameters():
        expected = 0.5 * start[name] + 0.5 * dict(trainer.model_a.named_parameters())[name]
        assert torch.allclose(p, expected, atol=1e-6)
    assert set(trainer.algorithm.state_dict()["teachers"]) == {"A", "B"}

    # killed after its step-4 checkpoint, then resumed: the same losses as an uninterrupted run
    quiet = {"progress": False, "evaluate": False, "log": lambda m: None}
    train(load_config(None, tiny_overrides(**extra)), tmp_path / "whole", **quiet)
    real_step = Trainer.train_step

    def killed_at_six(self, diagnostics=False):
        if self.state.step == 6:
            raise KeyboardInterrupt
        return real_step(self, diagnostics)

    monkeypatch.setattr(Trainer, "train_step", killed_at_six)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(None, tiny_overrides(**extra)), tmp_path / "part", **quiet)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    train(None, tmp_path / "part", resume=True, **quiet)

    def losses(run):
        return [(r["step"], r["loss"]) for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "train"]

    assert losses(tmp_path / "part") == losses(tmp_path / "whole") and len(losses(tmp_path / "whole")) == 8


def test_pseudo_postprocess_turns_far_fragments_of_each_image_into_background():
    """``method.pseudo_postprocess: largest_component``: per unlabeled image, the pseudo-labels keep the
    largest foreground component (and each class's largest part inside it); the mask is unchanged."""
    from coda_edu.postprocess import keep_largest_components_batch

    labels = torch.zeros(2, 10, 10, dtype=torch.long)
    labels[0, 2:6, 2:6] = 2  # image 0: the organ ...
    labels[0, 8:10, 8:10] = 1  # ... and a fragment away from it
    labels[1, 0:2, 0:2] = 1  # image 1: a small blob ...
    labels[1, 4:9, 4:9] = 3  # ... and the organ, elsewhere: each image is its own
    out = keep_largest_components_batch(labels, 4)
    assert out.dtype == labels.dtype and out.shape == labels.shape
    assert int((out[0] == 1).sum()) == 0 and torch.equal(out[0, 2:6, 2:6], labels[0, 2:6, 2:6])
    assert int((out[1] == 1).sum()) == 0 and int((out[1] == 3).sum()) == 25

    def pseudo(rule):
        cfg = resolve(load_config(None, tiny_overrides(**{"method.pseudo_postprocess": rule})))
        algo = METHODS.get(cfg.method.name).build(cfg, 4, None)  # with the refinement it turns on
        algo.trackers["A"].update(
            torch.full((1, 4, 2, 2), 0.25),
            torch.zeros(1, 2, 2, dtype=torch.long),
            torch.full((1, 4, 2, 2), 0.25),
            4,
            None,
        )
        probs = torch.nn.functional.one_hot(labels, 4).movedim(-1, 1).float() * 0.9 + 0.025
        return algo._pseudo("A", probs)

    raw_labels, raw_mask = pseudo("none")
    kept_labels, kept_mask = pseudo("largest_component")
    assert torch.equal(raw_labels, labels) and torch.equal(kept_labels, out)
    assert torch.equal(raw_mask, kept_mask)
    with pytest.raises(Exception, match="pseudo_postprocess"):
        load_config(None, tiny_overrides(**{"method.pseudo_postprocess": "biggest"}))
