import pytest
import torch

from coda_edu.config import load_config, resolve
from coda_edu.models import UNet, build_pair


def test_unet2d_default_layout_and_shapes():
    net = UNet(1, 4, spatial_dims=2)
    assert [m[1][0].out_channels for m in net.down] == [32, 64, 128, 256]
    assert net.stem[0].out_channels == 16
    out = net(torch.randn(2, 1, 64, 48))
    assert out.shape == (2, 4, 64, 48)
    drops = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout2d)]
    assert drops == [0.05, 0.1, 0.2, 0.3, 0.5]


def test_unet3d_and_transposed_upsampling():
    net = UNet(1, 2, spatial_dims=3, base_width=4, levels=4, upsampling="transposed")
    assert net(torch.randn(1, 1, 16, 24, 32)).shape == (1, 2, 16, 24, 32)


def test_pair_differs_in_init_and_is_reproducible():
    cfg = resolve(load_config(None, ["model.base_width=16", "model.init_scale=scheme"]))
    a, b = build_pair(cfg, 1, 4)
    a2, b2 = build_pair(cfg, 1, 4)
    wa, wb = a.stem[0].weight, b.stem[0].weight
    assert not torch.equal(wa, wb)
    assert torch.equal(wa, a2.stem[0].weight) and torch.equal(wb, b2.stem[0].weight)
    # kaiming normal (fan-in) and xavier normal (fan-in + fan-out) give different spreads on a deep layer
    conv_a, conv_b = a.down[2][1][0].weight, b.down[2][1][0].weight
    fan_in, fan_out = conv_a.shape[1] * 9, conv_a.shape[0] * 9
    assert conv_a.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
    assert conv_b.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.1)


def test_building_a_pair_leaves_the_global_rng_alone():
    cfg = resolve(load_config(None, ["model.base_width=4"]))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_pair(cfg, 1, 4)
    assert torch.equal(torch.rand(3), expected)


def test_matched_scale_gives_both_networks_the_xavier_scale_behind_batch_norm():
    cfg = resolve(load_config(None, ["model.base_width=8"]))
    assert cfg.model.init_scale == "matched"
    a, b = build_pair(cfg, 1, 4)
    for conv_a, conv_b in ((a.stem[0], b.stem[0]), (a.down[2][1][0], b.down[2][1][0])):
        fan_in, fan_out = conv_a.weight.shape[1] * 9, conv_a.weight.shape[0] * 9
        xavier = (2 / (fan_in + fan_out)) ** 0.5
        assert conv_a.weight.std().item() == pytest.approx(xavier, rel=1e-4)
        assert conv_b.weight.std().item() == pytest.approx(xavier, rel=0.15)
        assert not torch.equal(conv_a.weight, conv_b.weight)  # still two different draws
    # the head feeds no batch norm: it keeps its scheme (kaiming A, xavier B)
    fan_in, fan_out = a.head.weight.shape[1], a.head.weight.shape[0]
    assert a.head.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.4)
    raw_a, _ = build_pair(resolve(load_config(None, ["model.base_width=8", "model.init_scale=scheme"])), 1, 4)
    assert raw_a.stem[0].weight.std().item() > 2.5 * a.stem[0].weight.std().item()  # 9x the variance in the stem


def test_channel_dropout_drops_whole_channels_of_the_later_items_only():
    from coda_edu.models.unet import channel_dropout

    torch.manual_seed(0)
    h = torch.rand(5, 40, 6, 7) + 0.5  # positive: a dropped channel is exactly zero, a kept one is not
    out = channel_dropout(h, 0.5, perturbed_from=2)
    assert torch.equal(out[:2], h[:2])  # the items before perturbed_from are untouched
    ratio = out[2:] / h[2:]
    per_channel = ratio.flatten(2)
    # one draw per item and channel, shared by all its pixels: 0 (dropped) or 1/(1-p) = 2 (kept, rescaled)
    assert torch.allclose(per_channel, per_channel[..., :1].expand_as(per_channel))
    values = per_channel[..., 0]
    assert set(torch.unique(values).tolist()) == {0.0, 2.0}
    assert 0.3 < float((values == 0).float().mean()) < 0.7  # about p of 120 draws
    assert torch.equal(channel_dropout(h, 0.0, 0), h) and torch.equal(channel_dropout(h, 0.5, 5), h)
    v = torch.rand(2, 3, 4, 4, 4) + 0.5  # a 3D feature map: one draw per channel of a volume
    r = (channel_dropout(v, 0.5, 0) / v).flatten(2)
    assert torch.allclose(r, r[..., :1].expand_as(r))
    with pytest.raises(ValueError, match="below 1"):
        channel_dropout(h, 1.0, 0)


def test_unet_feature_dropout_changes_only_the_perturbed_items_and_is_off_by_default():
    torch.manual_seed(0)
    net = UNet(1, 3, spatial_dims=2, base_width=4, levels=4).eval()  # eval: each item's logits its own
    x = torch.randn(4, 1, 32, 32)
    plain = net(x)
    assert torch.equal(net(x, feature_dropout=0.0, perturbed_from=0), plain)
    dropped = net(x, feature_dropout=0.5, perturbed_from=2)
    assert torch.allclose(dropped[:2], plain[:2], atol=1e-6)
    assert all(not torch.allclose(dropped[i], plain[i], atol=1e-3) for i in (2, 3))
    # the decoder sees the dropped encoder outputs: even the first skip (level 0) is perturbed
    seen = {}
    net.up[-1].register_forward_hook(lambda mod, args, out: seen.setdefault("skip", args[1]))
    net(x, feature_dropout=0.9, perturbed_from=0)
    stem = net.stem(x)
    zeroed = (seen["skip"].flatten(2).abs().amax(-1) == 0) & (stem.flatten(2).abs().amax(-1) > 0)
    assert bool(zeroed.any())
