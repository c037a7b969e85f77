import torch

from coda_edu.config import AugmentConfig
from coda_edu.data.augment import Augmenter, affine_theta, apply_affine
from coda_edu.data.base import PatchPool
from coda_edu.data.sampling import IndexStream, TwoStreamSampler


def label_image(n=6, size=16, seed=0, block=4):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n, size // block, size // block), generator=g)
    labels = labels.repeat_interleave(block, 1).repeat_interleave(block, 2)
    images = labels.float().unsqueeze(1) * 10.0  # intensity encodes the label
    return images, labels


def test_disabled_augmentation_is_identity():
    images, labels = label_image()
    aug = Augmenter(AugmentConfig(flip=False, rot90=False, rotate_degrees=0, scale=0, intensity=0), spatial_dims=2)
    out, lab = aug(images, labels, torch.Generator().manual_seed(0))
    assert torch.equal(out, images) and torch.equal(lab, labels)


def test_rot90_and_flip_are_exact_and_labels_follow_images():
    images, labels = label_image()
    quarter = torch.tensor([[0.0, -1.0], [1.0, 0.0]]).expand(6, 2, 2)
    out, lab = apply_affine(images, labels, affine_theta(quarter, 2))
    assert torch.equal(lab, torch.rot90(labels, k=1, dims=(1, 2))) or torch.equal(
        lab, torch.rot90(labels, k=-1, dims=(1, 2))
    )
    assert torch.allclose(out[:, 0], lab.float() * 10, atol=1e-4)


def test_random_augmentation_keeps_images_and_labels_consistent():
    images, labels = label_image(n=8, size=64, block=16)
    cfg = AugmentConfig(flip=True, rot90=True, rotate_degrees=20, scale=0.15, intensity=0)
    out, lab = Augmenter(cfg, 2)(images, labels, torch.Generator().manual_seed(1))
    # Intensity encodes the label: the warped image, rounded, gives the warped label
    # everywhere except on a thin band along the label borders.
    agree = (out[:, 0] / 10).round().long() == lab
    assert agree.float().mean() > 0.95
    # Items get different transforms.
    assert not torch.equal(lab[0], labels[0]) or not torch.equal(lab[1], labels[1])


def test_outside_pixels_get_the_fill_label():
    images = torch.ones(1, 1, 16, 16)
    labels = torch.full((1, 16, 16), 2)
    theta = affine_theta(torch.eye(2).unsqueeze(0) * 1.5, 2)  # zoom out: corners come from outside
    out, lab = apply_affine(images, labels, theta, fill_label=255)
    assert lab[0, 0, 0] == 255 and lab[0, 8, 8] == 2
    assert out[0, 0, 0, 0] == 0


def test_3d_augmentation_leaves_the_slice_axis():
    vol = torch.arange(4).float().view(1, 1, 4, 1, 1).expand(2, 1, 4, 8, 8).contiguous()
    lab = vol[:, 0].long()
    cfg = AugmentConfig(flip=True, rot90=True, rotate_degrees=0, scale=0, intensity=0)
    out, out_lab = Augmenter(cfg, 3)(vol, lab, torch.Generator().manual_seed(0))
    assert torch.equal(out_lab, lab)  # constant in-plane, so any in-plane transform leaves it unchanged


def test_intensity_jitter_changes_each_item_differently():
    images = torch.ones(4, 1, 8, 8)
    out, _ = Augmenter(AugmentConfig(flip=False, rot90=False, rotate_degrees=0, scale=0, intensity=0.2), 2)(
        images, None, torch.Generator().manual_seed(0)
    )
    per_item = out.mean((1, 2, 3))
    assert per_item.unique().numel() == 4


def test_index_stream_covers_every_item_each_epoch_and_resumes():
    stream = IndexStream(10, seed=0, stream=1)
    first = stream.take(10)
    assert sorted(first.tolist()) == list(range(10))
    stream.take(3)
    state = stream.state_dict()
    expected = stream.take(25)
    again = IndexStream(10, seed=0, stream=1)
    again.load_state_dict(state)
    assert torch.equal(again.take(25), expected)


def test_two_stream_sampler():
    sampler = TwoStreamSampler(5, 20, 2, 6, seed=0)
    idx_l, idx_u = sampler.next_indices()
    assert idx_l.shape == (2,) and idx_u.shape == (6,)
    assert TwoStreamSampler(5, 20, 2, 0, seed=0).next_indices()[1] is None


def test_patch_pool_crops_inside_each_volume():
    import numpy as np

    vols = [np.full((1, 6, 10, 12), i + 1, np.float32) for i in range(3)]
    vols[1] = np.full((1, 4, 8, 8), 2, np.float32)  # smaller than the patch in depth: zero padded
    labels = [np.ones(v.shape[1:], np.uint8) for v in vols]
    pool = PatchPool(vols, labels, ["a", "b", "c"], (5, 8, 8))
    x, y = pool.batch(torch.tensor([0, 1, 2, 0]), torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 5, 8, 8) and y.shape == (4, 5, 8, 8)
    assert (x[0] == 1).all() and (x[2] == 3).all()
    assert set(x[1].unique().tolist()) <= {0.0, 2.0}


def test_random_gamma_keeps_each_items_range_and_order_and_is_seeded():
    from coda_edu.data.augment import random_gamma

    x = torch.rand(4, 1, 8, 8) * 3 - 1
    y = random_gamma(x, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(y, random_gamma(x, 0.5, torch.Generator().manual_seed(0)))
    for a, b in zip(x, y):
        assert torch.allclose(a.min(), b.min(), atol=1e-5) and torch.allclose(a.max(), b.max(), atol=1e-5)
        order = a.flatten().argsort()
        assert (b.flatten()[order].diff() >= -1e-6).all()  # a monotone change of the intensities
    assert not torch.allclose(x, y)
