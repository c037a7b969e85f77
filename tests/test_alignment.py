import pytest
import torch

from coda_edu.method.alignment import (
    align_distribution,
    class_marginal,
    class_shares,
    ema_update,
    label_marginal,
    pseudo_labels,
)


def random_probs(n=4, c=4, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, c, h, w, generator=g) * 2, dim=1)


def test_aligned_probabilities_sum_to_one():
    probs = random_probs()
    pi_l = torch.tensor([0.7, 0.1, 0.1, 0.1])
    pi_u = torch.tensor([0.85, 0.05, 0.05, 0.05])
    for alpha in (0.0, 0.3, 1.0):
        aligned = align_distribution(probs, pi_l, pi_u, alpha)
        assert torch.allclose(aligned.sum(1), torch.ones(4, 8, 8), atol=1e-6)
        assert (aligned >= 0).all()


def test_alignment_is_identity_for_equal_marginals_or_alpha_zero():
    probs = random_probs()
    pi = torch.tensor([0.4, 0.3, 0.2, 0.1])
    assert torch.allclose(align_distribution(probs, pi, pi.clone(), alpha=1.0), probs, atol=1e-6)
    other = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert torch.allclose(align_distribution(probs, pi, other, alpha=0.0), probs, atol=1e-6)


def test_alignment_formula_on_one_pixel():
    p = torch.tensor([0.6, 0.3, 0.1]).view(1, 3, 1, 1)
    pi_l = torch.tensor([0.5, 0.25, 0.25])
    pi_u = torch.tensor([0.8, 0.1, 0.1])
    w = (pi_l / pi_u) ** 0.5
    expected = p.view(3) * w / (p.view(3) * w).sum()
    got = align_distribution(p, pi_l, pi_u, alpha=0.5, eps=0.0).view(3)
    assert torch.allclose(got, expected, atol=1e-6)


def test_alignment_moves_pseudo_label_shares_towards_labeled_marginal():
    # A network biased towards background: minority pixels are predicted with a
    # background-leaning distribution, so argmax under-counts the minority class.
    g = torch.Generator().manual_seed(1)
    n = 20000
    truth = (torch.rand(n, generator=g) < 0.3).long()  # true minority share 0.3
    logit_fg = torch.where(truth == 1, torch.full((n,), -0.3), torch.full((n,), -3.0)) + 0.5 * torch.randn(
        n, generator=g
    )
    probs = torch.softmax(torch.stack([torch.zeros(n), logit_fg], 1), dim=1).view(n, 2, 1, 1)
    pi_u = class_marginal(probs)
    pi_l = torch.tensor([0.7, 0.3])  # the labeled marginal
    before = class_shares(pseudo_labels(probs)[1], 2)
    after = class_shares(pseudo_labels(align_distribution(probs, pi_l, pi_u, alpha=1.0))[1], 2)
    assert before[1] < 0.2  # biased: far below 0.3
    assert abs(after[1] - 0.3) < abs(before[1] - 0.3)  # alignment moves the share towards pi_l
    assert after[1] > before[1] + 0.05


def test_no_gradient_flows_into_marginals():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    probs = torch.softmax(logits, 1)
    pi_l = ema_update(None, class_marginal(probs[:1]), 0.9)
    pi_u = ema_update(torch.full((3,), 1 / 3), class_marginal(probs[1:]), 0.9)
    assert not pi_l.requires_grad and not pi_u.requires_grad
    # Even marginals that could take a gradient receive none through the alignment ...
    pi_l_leaf = pi_l.clone().requires_grad_(True)
    pi_u_leaf = pi_u.clone().requires_grad_(True)
    aligned = align_distribution(probs, pi_l_leaf, pi_u_leaf, alpha=1.0)
    (aligned[:, 1] * torch.rand_like(aligned[:, 1])).sum().backward()
    assert pi_l_leaf.grad is None and pi_u_leaf.grad is None
    # ... while the predictions themselves still get one.
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_ema_update_formula_and_start():
    first = ema_update(None, torch.tensor([0.2, 0.8]), 0.99)
    assert torch.equal(first, torch.tensor([0.2, 0.8]))
    nxt = ema_update(first, torch.tensor([1.0, 0.0]), 0.9)
    assert torch.allclose(nxt, torch.tensor([0.9 * 0.2 + 0.1, 0.9 * 0.8]))


def test_marginals_and_label_frequencies():
    probs = torch.zeros(1, 3, 2, 2)
    probs[0, 0] = 1.0
    probs[0, :, 0, 0] = torch.tensor([0.0, 0.5, 0.5])
    assert torch.allclose(class_marginal(probs), torch.tensor([0.75, 0.125, 0.125]))
    valid = torch.tensor([[[True, False], [False, False]]])
    assert torch.allclose(class_marginal(probs, valid), torch.tensor([0.0, 0.5, 0.5]))
    labels = torch.tensor([[0, 1], [2, 255]])
    assert torch.allclose(label_marginal(labels, 3, ignore_index=255), torch.tensor([1, 1, 1]) / 3)
    conf, lab = pseudo_labels(probs)
    assert lab[0, 0, 0] in (1, 2) and conf[0, 1, 1] == 1.0


def test_hard_count_weights_formula_clip_and_identity():
    from coda_edu.beyond.argmax_readings import apply_class_weights, hard_count_weights

    target = torch.tensor([0.9, 0.05, 0.05])
    assert torch.allclose(hard_count_weights(target, target.clone(), alpha=1.0), torch.ones(3), atol=1e-6)
    shares = torch.tensor([0.99, 0.005, 0.005])
    w = hard_count_weights(target, shares, alpha=0.5, max_weight=100.0, eps=0.0)
    assert torch.allclose(w, (target / shares) ** 0.5)
    assert w[1] > 1 > w[0]  # the under-predicted class is boosted
    clipped = hard_count_weights(target, torch.tensor([0.999, 0.0, 0.001]), alpha=1.0, max_weight=4.0)
    assert clipped.max() == pytest.approx(4.0) and clipped.min() >= 0.25
    assert hard_count_weights(target, shares, alpha=0.0).allclose(torch.ones(3))
    probs = random_probs(c=3)
    out = apply_class_weights(probs, w)
    assert torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-6)
    assert (out[:, 1] >= probs[:, 1] - 1e-6).all()  # weight > 1 never lowers that class


def test_argmax_share_matching_reaches_the_target_shares():
    from coda_edu.beyond.argmax_readings import apply_log_offsets, match_argmax_shares

    g = torch.Generator().manual_seed(0)
    # a biased predictor: class 1 truly covers ~20 % of pixels but wins the argmax far less often
    logits = torch.randn(8, 3, 16, 16, generator=g)
    logits[:, 0] += 1.5
    probs = torch.softmax(logits, 1)
    target = torch.tensor([0.6, 0.2, 0.2])
    before = class_shares(probs.argmax(1), 3)
    assert before[1] < 0.15
    b = match_argmax_shares(probs, target, iterations=60, step_size=0.5)
    after = class_shares(apply_log_offsets(probs, b).argmax(1), 3)
    assert torch.allclose(after, target, atol=0.02)
    assert b[1] > b[0] and abs(float(b.sum())) < 1e-4  # centred offsets; the rare class gets the lift
    # warm start: a few more iterations from the solution stay at the solution
    b2 = match_argmax_shares(probs, target, offsets=b, iterations=3)
    assert torch.allclose(class_shares(apply_log_offsets(probs, b2).argmax(1), 3), target, atol=0.03)
    # a target equal to the current shares needs no offsets
    assert match_argmax_shares(probs, before, iterations=5).abs().max() < 1e-3


def test_pseudo_label_precision_recall():
    from coda_edu.diagnostics import pseudo_label_precision_recall

    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    truth = torch.tensor([0, 1, 1, 1, 2, 2])
    precision, recall = pseudo_label_precision_recall(labels, truth, 4)
    assert precision[:3].tolist() == pytest.approx([0.5, 2 / 3, 1.0])
    assert recall[:3].tolist() == pytest.approx([1.0, 2 / 3, 0.5])
    assert torch.isnan(precision[3]) and torch.isnan(recall[3])
