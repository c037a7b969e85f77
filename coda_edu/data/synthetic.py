"""Embedded synthetic data: short-axis cardiac-like phantoms, no download needed.

Each synthetic *patient* is a stack of slices from the base (z = 0) to the apex
(z = 1) of a heart drawn in a body section with lungs, spine and aorta:

- left ventricle (LV): a bright blood pool whose outline is a circle deformed by
  low-order Fourier harmonics, shrinking towards the apex;
- myocardium (MYO): a ring of varying thickness around the LV, as dark as the
  surrounding tissue (so its outer border must be learned from shape);
- right ventricle (RV): a bright crescent beside the septum, smaller towards the apex
  and absent in the apical slices (so some slices have an empty RV);
- optionally a rare *lesion* class: a small bright blob inside the myocardium of some
  patients, on a few slices.

Per patient: heart position, orientation (rotation), size, shape harmonics, tissue
contrast, a smooth multiplicative bias field and Rician noise are drawn from a seeded
generator. Intensities are min-max normalised per patient, as in the common ACDC
preprocessing. The ``imbalance`` knob shrinks the heart (and the RV most) relative to
the field of view: 0 gives a large heart, 1 a small one with a thin RV.

The same generator gives 2D slices (``synthetic``, a 2D network, per-patient volume
evaluation exactly like ACDC) and 3D volumes (``synthetic3d``, a 3D network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import option
from ..errors import ConfigError
from ..presets import dataset_quick
from ..registry import DATASETS, DatasetSpec
from .base import Case, PatchPool, SegmentationData, TrainPool
from .splits import choose_labeled, labeled_count

CLASS_NAMES = ["background", "RV", "MYO", "LV"]
RARE_CLASS_NAME = "lesion"


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, H, W)`` images (partial-volume effect)."""
    radius = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = x.unsqueeze(1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
    return x.squeeze(1)


def generate_phantoms(
    n_patients: int,
    slices: int,
    resolution: int = 64,
    imbalance: float = 0.5,
    rare_class: bool = False,
    noise: float = 0.08,
    bias_field: float = 0.3,
    seed: int = 0,
    rv_contrast=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n_patients`` stacks of ``slices`` phantoms.

    Returns ``images`` float32 ``(P, S, H, W)`` in [0, 1] and ``labels`` uint8
    ``(P, S, H, W)`` with 0 background, 1 RV, 2 MYO, 3 LV (and 4 lesion if ``rare_class``).
    ``rv_contrast`` (one value per patient, default 1) scales the RV blood pool's
    contrast against the surrounding tissue: 1 keeps it, 0 makes the RV as dark as the
    tissue around the heart. It draws no random numbers, so every other property of a
    patient is the same whatever its value.
    Everything is vectorised over all slices at once (1,000 slices of 64x64 take well
    under a second).
    """
    g = torch.Generator().manual_seed(int(seed))
    P, S, R = n_patients, slices, resolution

    def u(low, high, n=P):
        return low + (high - low) * torch.rand(n, generator=g)

    # --- per-patient parameters, broadcast to (P, S, 1, 1) later -------------------
    # Patients differ in anatomy (heart size, LV dilation, wall thickness, RV size),
    # pose, tissue contrast (the myocardium can be darker or brighter than the
    # surrounding tissue), noise level and bias field, so that a few labeled patients
    # do not cover the population.
    heart = _lerp(1.45, 0.55, imbalance) * u(0.75, 1.25)
    dilation = u(0.8, 1.3)
    wall = u(0.7, 1.4)
    rv_width = _lerp(1.15, 0.45, imbalance) * u(0.7, 1.3)
    cx, cy = u(-0.12, 0.12), u(-0.1, 0.1)
    theta = u(-math.pi / 4, math.pi / 4)
    harm = [(u(-0.1, 0.1), u(0, 2 * math.pi)) for _ in range(2)]
    thick_phase = u(0, 2 * math.pi)
    blood = u(0.6, 0.95)
    rv_blood = blood * u(0.75, 1.0)
    myo_int, tissue = u(0.15, 0.4), u(0.22, 0.45)
    lung, spine = u(0.02, 0.08), u(0.45, 0.65)
    body_a, body_b = u(0.82, 0.95), u(0.65, 0.8)
    noise_level = noise * u(0.5, 1.5)
    bias_c = torch.rand(P, 4, generator=g) * 2 - 1
    has_lesion = (torch.rand(P, generator=g) < 0.6) & bool(rare_class)
    lesion_angle, lesion_z = u(0, 2 * math.pi), u(0.25, 0.6)

    # --- per-slice position from base (0) to apex (1) -----------------------------
    z = torch.linspace(0.05, 0.95, S) if S > 1 else torch.full((1,), 0.4)
    z = (z[None, :] + u(-0.04, 0.04)[:, None]).clamp(0, 1)  # (P, S)

    def ps(v):  # (P,) -> (P, 1, 1, 1)
        return v.view(P, 1, 1, 1)

    zz = z.view(P, S, 1, 1)
    axis = (torch.arange(R, dtype=torch.float32) + 0.5) / R * 2 - 1
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    xx, yy = xx.view(1, 1, R, R), yy.view(1, 1, R, R)

    # Heart frame: translate then rotate.
    dx, dy = xx - ps(cx), yy - ps(cy)
    ct, st = torch.cos(ps(theta)), torch.sin(ps(theta))
    hu, hv = ct * dx + st * dy, -st * dx + ct * dy
    rho, phi = torch.sqrt(hu**2 + hv**2), torch.atan2(hv, hu)

    r_lv = 0.17 * ps(heart) * ps(dilation) * (1 - 0.6 * zz**1.6)
    deform = 1 + sum(ps(a) * torch.cos((k + 2) * phi + ps(p)) for k, (a, p) in enumerate(harm))
    r_in = r_lv * deform
    r_out = r_in + 0.09 * ps(heart) * ps(wall) * (1 + 0.15 * zz) * (1 + 0.2 * torch.cos(phi + ps(thick_phase)))
    lv = rho < r_in
    myo = (rho >= r_in) & (rho < r_out)

    rv_scale = ((0.82 - zz) / 0.82).clamp(min=0) ** 0.7
    r_ref = 0.26 * ps(heart)
    rv_cu = -(r_ref * 0.55)
    rv_au = (r_ref * 0.5 + 0.11 * ps(heart) * ps(rv_width)) * rv_scale
    rv_av = r_ref * 1.3 * rv_scale.clamp(min=1e-3) ** 0.5
    rv_ell = ((hu - rv_cu) / rv_au.clamp(min=1e-4)) ** 2 + (hv / rv_av) ** 2 < 1
    rv = rv_ell & (rho >= r_out) & (hu < 0) & (rv_scale > 0.05)

    # Background anatomy (image frame).
    body = (xx / ps(body_a)) ** 2 + ((yy - 0.05) / ps(body_b)) ** 2 < 1
    lungs = (((xx.abs() - 0.52) / 0.28) ** 2 + ((yy + 0.05) / 0.42) ** 2 < 1) & body
    spine_m = (xx**2 + (yy - 0.58) ** 2) < 0.08**2
    ax, ay = ps(cx) + 0.22 * ps(heart) + 0.12, ps(cy) + 0.3 * ps(heart) + 0.14
    aorta = ((xx - ax) ** 2 + (yy - ay) ** 2) < (0.075 * ps(heart).clamp(max=1.1)) ** 2

    label = torch.zeros(P, S, R, R, dtype=torch.uint8)
    label[rv] = 1
    label[myo] = 2
    label[lv] = 3
    if rare_class:
        lx = (r_in + r_out) / 2 * torch.cos(ps(lesion_angle))
        ly = (r_in + r_out) / 2 * torch.sin(ps(lesion_angle))
        near = ((hu - lx) ** 2 + (hv - ly) ** 2) < (0.07 * ps(heart)) ** 2
        lesion = myo & near & ps(has_lesion) & ((zz - ps(lesion_z)).abs() < 0.2)
        label[lesion] = 4

    def paint(img, mask, value):
        return torch.where(mask, value.expand_as(img), img)

    img = torch.zeros(P, S, R, R)
    img = paint(img, body, ps(tissue))
    img = paint(img, lungs, ps(lung))
    img = paint(img, spine_m & body, ps(spine))
    img = paint(img, aorta & ~lungs, ps(blood))
    img = paint(img, label == 2, ps(myo_int))
    img = paint(img, label == 3, ps(blood))
    if rv_contrast is not None:
        c = torch.as_tensor(rv_contrast, dtype=torch.float32).reshape(P)
        rv_blood = tissue + (rv_blood - tissue) * c
    img = paint(img, label == 1, ps(rv_blood))
    img = paint(img, label == 4, ps(blood) * 0.85)

    img = _gaussian_blur(img.view(P * S, R, R), sigma=0.6 * R / 64).view(P, S, R, R)
    c = bias_c.view(P, 4, 1, 1, 1)
    field = 1 + bias_field * 0.5 * (c[:, 0] * xx + c[:, 1] * yy + c[:, 2] * xx * yy + c[:, 3] * (xx**2 - yy**2))
    img = img * field.clamp(0.3, 2.0)
    n1 = torch.randn(img.shape, generator=g) * ps(noise_level)
    n2 = torch.randn(img.shape, generator=g) * ps(noise_level)
    img = torch.sqrt((img + n1) ** 2 + n2**2)  # Rician magnitude noise
    lo = img.amin(dim=(1, 2, 3), keepdim=True)
    hi = img.amax(dim=(1, 2, 3), keepdim=True)
    img = (img - lo) / (hi - lo).clamp(min=1e-6)
    return img.numpy().astype(np.float32), label.numpy()


def pixel_class_shares(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of all pixels in each class (used by notebook 01 and the docs)."""
    counts = np.bincount(labels.reshape(-1).astype(np.int64), minlength=num_classes)[:num_classes]
    return counts / counts.sum()


@dataclass
class SyntheticConfig:
    """The embedded cardiac-like phantoms (``data.name: synthetic | synthetic3d``)."""

    n_patients: int = option(60, help="number of synthetic patients", min=8)
    slices_per_patient: int = option(8, help="short-axis slices per patient (2D) or depth of the volume (3D)", min=1)
    imbalance: float = option(
        0.5, help="0 = large heart (mild imbalance) ... 1 = small heart, thin RV (strong imbalance)", min=0.0, max=1.0
    )
    rare_class: bool = option(False, help="add a small fifth class (a 'lesion' inside the myocardium)")
    faint_rv: float = option(
        0.0,
        help="the labeled patients are the clear cases: every other patient's RV contrast is lowered by this "
        "fraction (0 = off, 1 = as dark as the tissue)",
        min=0.0,
        max=1.0,
    )
    noise: float = option(0.08, help="standard deviation of additive Gaussian noise", min=0.0)
    bias_field: float = option(0.3, help="strength of the smooth multiplicative bias field", min=0.0, max=0.9)
    resolution: int = option(64, help="in-plane size of the generated slices (pixels)", min=16)
    val_patients: int = option(10, help="patients held out for validation", min=1)
    test_patients: int = option(10, help="patients held out for testing", min=1)


@dataclass
class SyntheticOptions:
    """The ``data.*`` keys of the two synthetic datasets: one sub-section, ``data.synthetic.*``."""

    synthetic: SyntheticConfig = option(help="options of the synthetic phantoms", factory=SyntheticConfig)


def _split(cfg) -> dict[str, list[int]]:
    s = cfg.data.synthetic
    n = s.n_patients
    test = list(range(n - s.test_patients, n))
    val = list(range(n - s.test_patients - s.val_patients, n - s.test_patients))
    train = list(range(0, n - s.test_patients - s.val_patients))
    return {"train": train, "val": val, "test": test}


def check_patients(cfg) -> None:
    """Enough synthetic patients for the validation and test sets plus training."""
    s = cfg.data.synthetic
    if s.val_patients + s.test_patients >= s.n_patients - 1:
        raise ConfigError(
            "config key 'data.synthetic.n_patients': too few patients for the validation and test sets plus training"
        )


@DATASETS.register(
    DatasetSpec(
        "synthetic",
        "embedded cardiac-like phantoms, 2D slices (a 2D network, per-patient volume evaluation like ACDC)",
        spatial_dims=2,
        eval_mode="slices",
        check_config=check_patients,
        options=SyntheticOptions,
        quick=dataset_quick("synthetic"),
    )
)
def load_synthetic_2d(cfg) -> SegmentationData:
    return load_synthetic(cfg)


@DATASETS.register(
    DatasetSpec(
        "synthetic3d",
        "embedded cardiac-like phantoms as 3D volumes (a 3D network, random patches)",
        spatial_dims=3,
        eval_mode="volume",
        check_config=check_patients,
        options=SyntheticOptions,
    )
)
def load_synthetic_3d(cfg) -> SegmentationData:
    return load_synthetic(cfg, volumetric=True)


def load_synthetic(cfg, volumetric: bool = False) -> SegmentationData:
    """Build the synthetic dataset described by ``cfg.data.synthetic`` (split by patient)."""
    s = cfg.data.synthetic
    names = CLASS_NAMES + ([RARE_CLASS_NAME] if s.rare_class else [])
    split = _split(cfg)
    n_lab = labeled_count(cfg, len(split["train"]))
    labeled = choose_labeled(split["train"], n_lab, cfg.data.labeled_selection, cfg.seed)
    unlabeled = [p for p in split["train"] if p not in labeled]
    # faint_rv: the labeled patients are the clear cases; everyone else (unlabeled,
    # validation, test) has an RV whose contrast is lowered by this fraction.
    contrast = np.full(s.n_patients, 1.0 - s.faint_rv, dtype=np.float32)
    contrast[labeled] = 1.0
    images, labels = generate_phantoms(
        s.n_patients,
        s.slices_per_patient,
        s.resolution,
        s.imbalance,
        s.rare_class,
        s.noise,
        s.bias_field,
        seed=cfg.seed,
        rv_contrast=contrast if s.faint_rv > 0 else None,
    )

    def pid(p: int) -> str:
        return f"synth{p:03d}"

    def cases(patients: list[int]) -> list[Case]:
        return [Case(pid(p), images[p][None], labels[p]) for p in patients]

    if volumetric:
        size = tuple(cfg.data.image_size) or (s.slices_per_patient, s.resolution, s.resolution)
        pool_l = PatchPool(
            [images[p][None] for p in labeled], [labels[p] for p in labeled], [pid(p) for p in labeled], size
        )
        pool_u = PatchPool(
            [images[p][None] for p in unlabeled], [labels[p] for p in unlabeled], [pid(p) for p in unlabeled], size
        )
        spatial_dims, eval_mode = 3, "volume"
    else:

        def pool(patients: list[int]) -> TrainPool:
            x = torch.from_numpy(images[patients].reshape(-1, 1, s.resolution, s.resolution))
            y = torch.from_numpy(labels[patients].reshape(-1, s.resolution, s.resolution))
            ids = [pid(p) for p in patients for _ in range(s.slices_per_patient)]
            size = tuple(cfg.data.image_size)
            if size and size != (s.resolution, s.resolution):
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
                y = F.interpolate(y[:, None].float(), size=size, mode="nearest")[:, 0].to(torch.uint8)
            return TrainPool(x, y, ids)

        pool_l, pool_u = pool(labeled), pool(unlabeled)
        spatial_dims, eval_mode = 2, "slices"

    protocol = {
        "dataset": "synthetic3d" if volumetric else "synthetic",
        "generator": {
            "seed": cfg.seed,
            **{
                k: getattr(s, k)
                for k in (
                    "n_patients",
                    "slices_per_patient",
                    "resolution",
                    "imbalance",
                    "rare_class",
                    "noise",
                    "bias_field",
                    "faint_rv",
                )
            },
        },
        "splits": {
            "train": [pid(p) for p in split["train"]],
            "val": [pid(p) for p in split["val"]],
            "test": [pid(p) for p in split["test"]],
        },
        "labeled_cases": [pid(p) for p in labeled],
        "labeled_rule": f"{cfg.data.labeled_selection} {n_lab} of the training patients",
        "train_class_shares": pixel_class_shares(labels[split["train"]], len(names)).round(5).tolist(),
    }
    return SegmentationData(
        name=protocol["dataset"],
        class_names=names,
        in_channels=1,
        spatial_dims=spatial_dims,
        labeled=pool_l,
        unlabeled=pool_u,
        val=cases(split["val"]),
        test=cases(split["test"]),
        eval_mode=eval_mode,
        ignore_index=None,
        unit="voxel",
        protocol=protocol,
    )
