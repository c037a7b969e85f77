"""The fused pair (coda_edu/models/fused.py) computes exactly what the two plain U-Nets compute."""

import copy

import pytest
import torch

from coda_edu.models import UNet
from coda_edu.models.fused import FusedPair, PairMember, fuse_state_dicts, pair_cat, pair_logits, split_state_dict
from coda_edu.models.init import initialise

CASES = [  # (spatial dims, upsampling, input shape)
    (2, "bilinear", (3, 1, 32, 24)),
    (2, "transposed", (3, 1, 32, 24)),
    (3, "bilinear", (2, 1, 8, 16, 16)),
    (3, "transposed", (2, 1, 8, 16, 16)),
]


def plain_pair(dims=2, upsampling="bilinear", dropout=False, in_channels=1, classes=4):
    """Two differently initialised networks with non-trivial BN weights and biases."""
    torch.manual_seed(0)
    a = initialise(UNet(in_channels, classes, dims, 4, 3, dropout=dropout, upsampling=upsampling), "kaiming")
    b = initialise(UNet(in_channels, classes, dims, 4, 3, dropout=dropout, upsampling=upsampling), "xavier")
    with torch.no_grad():
        for net in (a, b):
            for p in net.parameters():
                if p.dim() == 1:
                    p.add_(0.1 * torch.randn_like(p))
    return a, b


def fused_copy(a, b):
    """A fused pair bound to copies of ``a`` and ``b`` (the originals stay independent)."""
    a2, b2 = copy.deepcopy(a), copy.deepcopy(b)
    return FusedPair(a2, b2), a2, b2


def loss_of(logits_a, logits_b, target):
    """A loss that weighs A and B differently, so a swapped gradient would show."""
    ce = torch.nn.functional.cross_entropy
    return ce(logits_a.float(), target) + 2.0 * ce(logits_b.float(), target) + (logits_a.float() ** 2).mean()


def test_state_dict_conversion_round_trips_exactly():
    a, b = plain_pair()
    fused = fuse_state_dicts(a.state_dict(), b.state_dict())
    assert list(fused) == list(a.state_dict())
    assert fused["stem.0.weight"].shape[0] == 2 * a.stem[0].weight.shape[0]
    assert fused["head.weight"].shape[0] == 8 and fused["stem.0.weight"].shape[1] == 1  # shared input
    back_a, back_b = split_state_dict(fused)
    for key, value in a.state_dict().items():
        assert torch.equal(back_a[key], value) and torch.equal(back_b[key], b.state_dict()[key])
        assert back_a[key].untyped_storage().nbytes() == value.numel() * value.element_size()  # a copy, not a view
    # the fused module's own state dict is the fused layout of the two networks
    pair, _, _ = fused_copy(a, b)
    for key, value in pair.state_dict().items():
        assert torch.equal(value, fused[key])


def test_mismatched_networks_are_refused():
    a = UNet(1, 4, 2, 4, 3)
    with pytest.raises(ValueError, match="differ"):
        fuse_state_dicts(a.state_dict(), UNet(1, 4, 2, 8, 3).state_dict())
    with pytest.raises(ValueError, match="differ"):
        FusedPair(a, UNet(1, 4, 2, 4, 4))


@pytest.mark.parametrize("dims,upsampling,shape", CASES)
def test_forward_and_gradients_match_the_plain_pair_fp32(dims, upsampling, shape):
    a, b = plain_pair(dims, upsampling)
    pair, a2, b2 = fused_copy(a, b)
    x = torch.randn(*shape)
    target = torch.randint(0, 4, (shape[0], *shape[2:]))
    logits_a, logits_b = a(x), b(x)
    fused_a, fused_b = pair(x)
    assert fused_a.shape == logits_a.shape and fused_b.shape == logits_b.shape
    torch.testing.assert_close(fused_a, logits_a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused_b, logits_b, rtol=1e-4, atol=1e-5)
    loss_of(logits_a, logits_b, target).backward()
    loss_of(fused_a, fused_b, target).backward()
    grads = {name: p.grad for name, p in pair.named_parameters()}
    grad_a, grad_b = split_state_dict(grads)
    for name, p in a.named_parameters():
        torch.testing.assert_close(grad_a[name], p.grad, rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(grad_b[name], dict(b.named_parameters())[name].grad, rtol=1e-3, atol=1e-5)
    # batch norm running statistics moved the same way (A's and B's are views of the fused ones)
    for name, buf in a.named_buffers():
        torch.testing.assert_close(dict(a2.named_buffers())[name], buf, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(dict(b2.named_buffers())[name], dict(b.named_buffers())[name], rtol=1e-5, atol=1e-6)
    # in eval mode (running statistics, dropout off) too
    for net in (a, b, pair):
        net.eval()
    with torch.no_grad():
        fa, fb = pair(x)
        torch.testing.assert_close(fa, a(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fb, b(x), rtol=1e-4, atol=1e-5)


# 3D: (2, 1, 16, 16, 16), because for (2, 1, 8, 16, 16) torch's CPU bf16 Conv3d backward gives the
# *plain* network an inf weight gradient at the bottleneck (torch 2.13+cpu; not a fused-pair effect).
@pytest.mark.parametrize("dims,upsampling,shape", [CASES[0], (3, "bilinear", (2, 1, 16, 16, 16))])
def test_bf16_autocast_matches_loosely(dims, upsampling, shape):
    a, b = plain_pair(dims, upsampling)
    pair, _, _ = fused_copy(a, b)
    x = torch.randn(*shape)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits_a, logits_b = a(x), b(x)
        fused_a, fused_b = pair(x)
    assert fused_a.dtype == torch.bfloat16
    scale = max(logits_a.float().abs().max().item(), logits_b.float().abs().max().item())
    assert (fused_a.float() - logits_a.float()).abs().max().item() < 0.05 * scale
    assert (fused_b.float() - logits_b.float()).abs().max().item() < 0.05 * scale
    target = torch.randint(0, 4, (shape[0], *shape[2:]))
    loss_of(logits_a, logits_b, target).backward()
    loss_of(fused_a, fused_b, target).backward()
    grad_a, _ = split_state_dict({n: p.grad for n, p in pair.named_parameters()})
    for name, p in a.named_parameters():
        cos = torch.nn.functional.cosine_similarity(grad_a[name].flatten(), p.grad.flatten(), dim=0)
        assert cos > 0.98, name


def test_dropout_in_eval_mode_and_per_channel_in_training():
    a, b = plain_pair(dropout=True)
    pair, _, _ = fused_copy(a, b)
    x = torch.randn(2, 1, 16, 16)
    for net in (a, b, pair):
        net.eval()
    fa, fb = pair(x)
    torch.testing.assert_close(fa, a(x), rtol=1e-4, atol=1e-5)
    drop = pair.down[-1][1][3]
    assert isinstance(drop, torch.nn.Dropout2d) and drop.p == a.down[-1][1][3].p
    drop.train()
    out = drop(torch.ones(64, 8, 4, 4))
    kept = out.ne(0).all(dim=(2, 3))
    assert torch.equal(kept, out.ne(0).any(dim=(2, 3)))  # whole (item, channel) maps are kept or dropped
    # each map is kept with probability 1 - p, in A's channels and in B's (256 maps each: sd 0.025)
    assert abs(kept[:, :4].float().mean().item() - (1 - drop.p)) < 0.1
    assert abs(kept[:, 4:].float().mean().item() - (1 - drop.p)) < 0.1


def test_channels_last_is_kept_and_pair_cat_orders_channels_per_network():
    fmt = torch.channels_last
    a, b = plain_pair()
    a.to(memory_format=fmt)
    b.to(memory_format=fmt)
    pair, a2, _ = fused_copy(a, b)
    assert pair.stem[0].weight.is_contiguous(memory_format=fmt)
    assert a2.stem[0].weight.is_contiguous(memory_format=fmt)
    x = torch.randn(2, 1, 16, 16).contiguous(memory_format=fmt)
    fa, _ = pair(x)
    torch.testing.assert_close(fa, a(x), rtol=1e-4, atol=1e-5)
    first = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 2)  # [fA0, fA1, fB0, fB1]
    second = 10 + torch.arange(6.0).view(1, 6, 1, 1).expand(1, 6, 2, 2)  # [sA0..2, sB0..2]
    expected = [0, 1, 10, 11, 12, 2, 3, 13, 14, 15]
    for f, s in ((first.contiguous(), second.contiguous()), (first.contiguous(memory_format=fmt), second)):
        out = pair_cat(f, s)
        assert out[0, :, 0, 0].tolist() == expected
    assert pair_cat(first.contiguous(memory_format=fmt), second.contiguous(memory_format=fmt)).is_contiguous(
        memory_format=fmt
    )


def test_bound_plain_modules_follow_the_fused_weights_both_ways():
    a, b = plain_pair()
    pair = FusedPair(a, b)
    optimizer = torch.optim.SGD(pair.parameters(), lr=0.1, momentum=0.9)
    x, target = torch.randn(2, 1, 16, 16), torch.randint(0, 4, (2, 16, 16))
    before = copy.deepcopy(a.state_dict())
    loss_of(*pair(x), target).backward()
    optimizer.step()
    # the optimiser moved the fused weights; A's parameters are views of them
    after_a, after_b = split_state_dict(pair.state_dict())
    for key, value in a.state_dict().items():
        assert torch.equal(value, after_a[key])
        assert torch.equal(b.state_dict()[key], after_b[key])
    assert not torch.equal(a.state_dict()["stem.0.weight"], before["stem.0.weight"])
    assert a.stem[1].num_batches_tracked.item() == 1 and b.stem[1].num_batches_tracked.item() == 1
    # state_dict() of a bound module hands out compact copies (a checkpoint holds this network only)
    for value in a.state_dict().values():
        assert value.untyped_storage().nbytes() == value.numel() * value.element_size()
    # loading into the plain module loads the fused one
    a.load_state_dict(before)
    torch.testing.assert_close(pair.stem[0].weight[:4], before["stem.0.weight"])
    assert torch.equal(pair.head.bias[4:], b.head.bias)


def test_fusing_leaves_the_global_rng_alone():
    a, b = plain_pair()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    FusedPair(a, b)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizer_state_in_the_plain_layout_matches_a_plain_optimizer(name):
    make = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4),
        "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    }[name]
    a, b = plain_pair()
    pair, a2, b2 = fused_copy(a, b)
    plain_opt = make(list(a.parameters()) + list(b.parameters()))
    fused_opt = make(pair.parameters())
    pair.attach_optimizer(fused_opt)
    x, target = torch.randn(2, 1, 16, 16), torch.randint(0, 4, (2, 16, 16))
    for _ in range(2):
        for opt in (plain_opt, fused_opt):
            opt.zero_grad()
        loss_of(a(x), b(x), target).backward()
        loss_of(*pair(x), target).backward()
        plain_opt.step()
        fused_opt.step()
    plain_state, fused_state = plain_opt.state_dict(), fused_opt.state_dict()
    assert fused_state["param_groups"][0]["params"] == plain_state["param_groups"][0]["params"]
    assert set(fused_state["state"]) == set(plain_state["state"])
    for j, entry in plain_state["state"].items():
        assert set(fused_state["state"][j]) == set(entry)
        for key, value in entry.items():
            torch.testing.assert_close(fused_state["state"][j][key], value, rtol=1e-3, atol=1e-6)
    # and back: a plain-layout state loads into the fused optimiser
    fresh = make(pair.parameters())
    pair.attach_optimizer(fresh)
    fresh.load_state_dict(plain_state)
    key = "momentum_buffer" if name == "sgd" else "exp_avg"
    first = next(iter(pair.parameters()))
    loaded = fresh.state[first][key]
    assert loaded.shape == first.shape
    torch.testing.assert_close(loaded[: loaded.shape[0] // 2], plain_state["state"][0][key])
    n = len(list(a.parameters()))
    torch.testing.assert_close(loaded[loaded.shape[0] // 2 :], plain_state["state"][n][key])


def test_pair_logits_runs_a_fused_pair_once():
    a, b = plain_pair()
    pair, _, _ = fused_copy(a, b)
    calls = []
    pair.register_forward_hook(lambda *args: calls.append(1))
    member_a, member_b = PairMember(pair, 0), PairMember(pair, 1)
    x = torch.randn(1, 1, 16, 16)
    la, lb = pair_logits(member_a, member_b, x)
    assert len(calls) == 1
    torch.testing.assert_close(member_b(x), lb)  # a member alone gives its own network's logits
    assert len(calls) == 2
    pa, pb = pair_logits(a, b, x)  # plain modules: two calls
    torch.testing.assert_close(la, pa, rtol=1e-4, atol=1e-5)
