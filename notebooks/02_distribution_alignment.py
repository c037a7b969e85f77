# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Distribution alignment and cross pseudo supervision
#
# Notebook 01 showed that a network trained with few labels under-predicts the small
# classes on data it has not seen. Co-DA corrects each network's pseudo-labels by
# **aligning** the class marginal of its predictions on unlabeled pixels to the
# marginal of its predictions on labeled pixels, and lets two differently initialised
# networks teach each other (**cross pseudo supervision**).
#
# **Learning objectives.** After this notebook you can
#
# 1. compute the labeled and unlabeled class marginals π_l and π_u of a network, and
#    explain why they differ;
# 2. apply the alignment p̃(c) ∝ p(c) · ((π_l(c) + ε) / (π_u(c) + ε))^α and predict
#    what α and the EMA momentum do;
# 3. explain how two networks with different initialisations disagree, and how each
#    one's pseudo-labels supervise the other.

# %% [markdown]
# ### Before you start
#
# **Prerequisites.** notebook 01 (class shares, the class marginal); PyTorch tensors of shape (N,
# C, H, W) and broadcasting; what a softmax probability is.
#
# **Time** to run all cells, per section, on a 2-core CPU (papermill; the quick size measured
# with `time coda-edu notebooks run --quick` on a shared machine, so an upper bound; the
# workshop total from [benchmarks.md](../docs/benchmarks.md#notebooks)). In a 90-minute
# workshop plan about 25 minutes for reading, the controls and the
# exercises ([instructor guide](../docs/teaching.md#schedule)).
#
# | section | quick (`quick=True`) | workshop (defaults) | GPU |
# |---|---|---|---|
# | set-up and 1. training the pair | 39 s | not measured | not measured |
# | 2. marginals | 1 s | not measured | not measured |
# | 3. the simplex (α slider) | 1 s | not measured | not measured |
# | 4. real predictions (α, momentum) | 1 s | not measured | not measured |
# | 5. cross pseudo supervision | 2 s | not measured | not measured |
# | exercise, recap | < 1 s | not measured | not measured |
# | **whole notebook** (kernel start included) | **48 s** | **51 s** | not measured |
#
# **Words** in *italics* or Greek letters: [glossary](../docs/glossary.md). Every formula is
# followed by a link to its row in
# [method.md](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision)
# and to the function that computes it.
# References are at the end of the notebook.

# %% [markdown]
# *Formula of objective 2* (the alignment): [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision)
# (row 3); [`coda_edu.method.alignment.align_distribution`](../coda_edu/method/alignment.py).

# %% tags=["parameters"]
quick: bool = False           # CI size
device: str = "auto"
seed: int = 0
solutions: bool = False
iterations: int = 300
labeled_patients: int = 3
imbalance: float = 0.5
alpha: float = 1.0            # default position of the alpha sliders
momentum: float = 0.99        # default position of the momentum slider

# %%
# %matplotlib inline

import numpy as np
import torch
from IPython.display import display
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from coda_edu import exercises
from coda_edu.analysis import alignment_effect, predict_pool, scratch_run_dir
from coda_edu.checkpoint import load_run_pair
from coda_edu.config import SMALL_SYNTHETIC, load_config
from coda_edu.method import align_distribution, class_marginal, class_shares, pseudo_labels
from coda_edu.train import train
from coda_edu.viz.display import show_plotly
from coda_edu.viz.figures import blend, class_colors, plot_class_shares
from coda_edu.viz.simplex import align_toy, ternary_points_figure, ternary_points_static, toy_predictions
from coda_edu.viz.widgets import alignment_explorer, simplex_explorer

steps = 30 if quick else iterations
_ = torch.manual_seed(seed)  # (assigned: the cell echoes nothing)

# %% [markdown]
# ## 1. A partially trained pair of networks
#
# We train networks A (Kaiming initialisation) and B (Xavier initialisation) on three
# labeled synthetic patients for a short while, then look at their predictions on the
# labeled and the unlabeled training slices. We follow network B, which learns faster
# early on: with plain SGD, Kaiming's larger initial weights shrink the effective step
# of the layers in front of batch norm, so A lags behind in short runs.

# %%
overrides = [f"seed={seed}", f"train.device={device}", "method.name=supervised", f"train.iterations={steps}",
             f"train.val_every={steps}", f"data.labeled_patients={labeled_patients}",
             f"data.synthetic.imbalance={imbalance}", "eval.splits=[val]"]
if quick:
    overrides += SMALL_SYNTHETIC
cfg = load_config(None, overrides)
result = train(cfg, scratch_run_dir(f"nb02-seed{seed}"), progress=True, log=lambda s: None)
data = result.data
names = data.class_names
model_a, model_b = load_run_pair(result.run_dir, "last")
probs_l = predict_pool(model_b, data.labeled)
probs_u = predict_pool(model_b, data.unlabeled)
truth_u = data.unlabeled.labels.long()

# %% [markdown]
# ## 2. Labeled versus unlabeled marginals
#
# π_l is the mean softmax of network B over the labeled pixels, π_u over the unlabeled
# pixels. Co-DA's premise: on the labeled images the network has seen the answers, on
# the unlabeled ones it has not, so π_u shows a bias that π_l does not — typically
# too little of the small classes. Compare the four bars per class: is π_u below π_l
# for the minority classes here, and how far are both from the true shares?

# %% [markdown]
# *Formulas.* π_l, π_u = mean softmax over the labeled, unlabeled pixels: [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision)
# (row 2); [`coda_edu.method.alignment.class_marginal`](../coda_edu/method/alignment.py). True
# shares: [`coda_edu.method.alignment.class_shares`](../coda_edu/method/alignment.py).

# %%
pi_l, pi_u = class_marginal(probs_l), class_marginal(probs_u)
true_l = class_shares(data.labeled.labels.long(), data.num_classes)
true_u = class_shares(truth_u, data.num_classes)
print(f"{'class':<11}{'pi_l':>9}{'pi_u':>9}{'labeled truth':>15}{'unlabeled truth':>17}")
for c, a, b, tl, tu in zip(names, pi_l, pi_u, true_l, true_u):
    print(f"{c:<11}{float(a):9.3%}{float(b):9.3%}{float(tl):15.3%}{float(tu):17.3%}")
display(plot_class_shares(names, {"pi_l (labeled predictions)": pi_l, "pi_u (unlabeled predictions)": pi_u,
                                  "labeled truth": true_l, "unlabeled truth": true_u},
                          title="class marginals of network B"))

# %% [markdown]
# ## 3. The formula on a toy example: the probability simplex
#
# With three classes, every prediction is a point of a triangle whose corners are the
# classes; the dashed lines split it into the three argmax regions. Below, 300 toy
# "pixels" of a network biased towards class 0. Alignment multiplies each class by
# w(c) = (π_l(c) / π_u(c))^α and renormalises: points move away from the over-predicted
# class, and some cross into the region of a minority class, changing their pseudo-label.

# %% [markdown]
# *Formula.* w(c) = ((π_l(c) + ε) / (π_u(c) + ε))^α, then renormalise over the classes:
# [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision)
# (row 3); [`coda_edu.method.alignment.align_distribution`](../coda_edu/method/alignment.py). The
# argmax of the result is the pseudo-label (row 4):
# [`coda_edu.method.alignment.pseudo_labels`](../coda_edu/method/alignment.py).

# %%
toy_names = ["background", "organ", "lesion"]
toy_probs, toy_truth = toy_predictions(300, seed=seed)
toy_pi_l = (np.bincount(toy_truth, minlength=3) / len(toy_truth)).tolist()  # the labeled marginal: true shares
toy_aligned, toy_pi_u = align_toy(toy_probs, toy_pi_l, alpha)
print("pi_u of the toy predictions:", np.round(toy_pi_u, 3), " pi_l:", np.round(toy_pi_l, 3))
print("pseudo-label shares before:", np.round(np.bincount(toy_probs.argmax(1), minlength=3) / 300, 3),
      " after:", np.round(np.bincount(toy_aligned.argmax(1), minlength=3) / 300, 3),
      " truth:", np.round(np.bincount(toy_truth, minlength=3) / 300, 3))
print(f"pseudo-label accuracy before {np.mean(toy_probs.argmax(1) == toy_truth):.1%}, "
      f"after {np.mean(toy_aligned.argmax(1) == toy_truth):.1%}")
# One figure: interactive in JupyterLab (hover a point for its probabilities), a PNG where JavaScript does not run.
title = "toy predictions, coloured by their true class (before alignment)"
show_plotly(ternary_points_figure(toy_probs, toy_truth, toy_names, title=title),
            static=ternary_points_static(toy_probs, toy_truth, toy_names, title=title))

# %% [markdown]
# Move α: at 0 nothing changes, at 1 the full ratio of marginals is applied.

# %%
simplex = simplex_explorer(toy_probs, toy_pi_l, toy_names, alpha=alpha)
simplex.show()

# %% [markdown]
# **Predict, then move the slider.** When α goes from 0 to 1, does the share of pixels
# whose pseudo-label is *lesion* go `"up"`, `"down"` or stay the `"same"`? Write your guess,
# then move α to 0 and to 1 and run the check.

# %%
my_prediction = ""  # "up", "down" or "same"

if solutions:
    my_prediction = exercises.predicted("alpha_lesion", simplex)
exercises.check_prediction("alpha_lesion", my_prediction, simplex)

# %% [markdown]
# ## 4. Alignment on the network's real predictions
#
# Two choices of the target π_l (both are config options, `method.alignment`):
#
# - `predictions`: the network's own mean prediction on labeled pixels (Co-DA's
#   marginal alignment as coda-edu reads it). It corrects only the *difference* between
#   how the network behaves on labeled and on unlabeled data. When π_l ≈ π_u (as early
#   in training, before the network has memorised its few labeled images), it changes
#   little.
# - `labels`: the true class frequencies of the labeled pixels. It also corrects a bias
#   the network has on labeled data.
#
# The table compares both with the hidden truth of the unlabeled pixels.

# %% [markdown]
# *Formulas.* Target `predictions`: [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision)
# (row 2), [`coda_edu.method.alignment.class_marginal`](../coda_edu/method/alignment.py); target
# `labels` (row 2′):
# [`coda_edu.method.alignment.label_marginal`](../coda_edu/method/alignment.py); the choice is
# explained in [method.md,
# readings](../docs/method.md#readings-we-had-to-choose-and-how-to-switch-them).

# %%
effects = {"predictions": alignment_effect(probs_u, pi_l, alpha), "labels": alignment_effect(probs_u, true_l, alpha)}
print(f"{'class':<11}{'before':>9}{'after (pred.)':>15}{'after (labels)':>16}{'truth':>9}")
for c, name in enumerate(names):
    print(f"{name:<11}{effects['predictions']['before'][c]:9.3%}{effects['predictions']['after'][c]:15.3%}"
          f"{effects['labels']['after'][c]:16.3%}{float(true_u[c]):9.3%}")
accuracy = {k: float((pseudo_labels(align_distribution(probs_u, t, pi_u, alpha))[1] == truth_u).float().mean())
            for k, t in (("predictions", pi_l), ("labels", true_l))}
print(f"pseudo-label accuracy: before {float((pseudo_labels(probs_u)[1] == truth_u).float().mean()):.2%}, "
      f"after aligning to predictions {accuracy['predictions']:.2%}, to labels {accuracy['labels']:.2%}")

# %% [markdown]
# During training π_u is an exponential moving average (EMA) over batches,
# π_u ← m·π_u + (1 − m)·(batch marginal). The explorer replays the unlabeled slices as
# batches of 8: the left plot shows the raw batch marginals (thin) and their EMA
# (thick) for the chosen momentum m; the right plot the pseudo-label class shares before
# and after aligning with that π_u, for the chosen target. A momentum near 1 gives a
# smooth but slow estimate (early in training it still remembers the untrained
# network); near 0 it follows every batch.

# %% [markdown]
# *Formula.* π_u ← m·π_u + (1 − m)·(batch marginal): [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision)
# (row 2, μ = `method.marginal_momentum`);
# [`coda_edu.method.alignment.ema_update`](../coda_edu/method/alignment.py).

# %%
batch = 8
batch_marginals = torch.stack([class_marginal(probs_u[i:i + batch]) for i in range(0, len(probs_u) - batch + 1, batch)])
explorer = alignment_explorer(batch_marginals, probs_u, {"predictions": pi_l, "labels": true_l}, names,
                              momentum=momentum, truth=truth_u, alpha=alpha)
explorer.show()

# %% [markdown]
# ## 5. Two networks, two opinions: cross pseudo supervision
#
# A and B see the same images but start from different weights, so their mistakes
# differ. Where they disagree (red below), at least one of them is wrong. In cross pseudo
# supervision, **A is trained on B's pseudo-labels and B on A's**: each network's errors
# are corrected by the other's opinion instead of being reinforced by its own. Co-DA
# aligns each network's predictions before they become the other's targets.

# %% [markdown]
# *Formulas.* Pseudo-labels (row 4):
# [`coda_edu.method.alignment.pseudo_labels`](../coda_edu/method/alignment.py); cross supervision
# loss (rows 6–7): [`coda_edu.method.losses.masked_cross_entropy`](../coda_edu/method/losses.py),
# [`coda_edu.method.algorithms.CrossPseudoSupervision`](../coda_edu/method/algorithms.py); all in
# [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision).

# %%
probs_u_a = predict_pool(model_a, data.unlabeled)
labels_a, labels_b = pseudo_labels(probs_u_a)[1], pseudo_labels(probs_u)[1]
disagree = labels_a != labels_b
print(f"A and B disagree on {disagree.float().mean():.2%} of the unlabeled pixels; "
      f"on the foreground of either: {disagree[(labels_a > 0) | (labels_b > 0)].float().mean():.1%}")
index = int(((truth_u > 0).flatten(1).sum(1)).argmax())
image = data.unlabeled.images[index, 0].numpy()
fig = Figure(figsize=(12, 3.2))
axes = fig.subplots(1, 4)
panels = [("B's pseudo-labels: target for A", labels_b[index]), ("A's pseudo-labels: target for B", labels_a[index]),
          ("hidden truth", truth_u[index])]
for ax, (title, lab) in zip(axes, panels):
    ax.imshow(blend(image, lab.numpy(), names), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
axes[3].imshow(image, cmap="gray")
axes[3].imshow(np.ma.masked_where(~disagree[index].numpy(), disagree[index].numpy()), cmap=ListedColormap(["#ff00ff"]),
               alpha=0.9)
axes[3].set_title("disagreement of A and B", fontsize=9)
axes[3].axis("off")
handles = [Rectangle((0, 0), 1, 1, color=col) for col in class_colors(names)[1:]] + [Rectangle((0, 0), 1, 1, color="#ff00ff")]
fig.legend(handles, list(names[1:]) + ["A and B disagree"], loc="lower center", ncol=len(handles), fontsize=8,
           frameon=False)
fig.tight_layout(rect=(0, 0.07, 1, 1))
display(fig)


# %% [markdown]
# ## Exercise: write the alignment step
#
# Complete `my_align(probs, pi_l, pi_u, alpha)`: `probs` has shape (N, C, H, W) and sums
# to 1 over dim 1; `pi_l`, `pi_u` have shape (C,). Return the aligned probabilities.

# %% [markdown]
# *Formula:* [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision)
# (row 3). Once your check passes, compare with
# [`coda_edu.method.alignment.align_distribution`](../coda_edu/method/alignment.py).

# %%
def my_align(probs: torch.Tensor, pi_l: torch.Tensor, pi_u: torch.Tensor, alpha: float) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError


if solutions:
    my_align = exercises.solution("alignment")
exercises.check("alignment", my_align)

# %% [markdown]
# ## Recap
#
# - Co-DA's premise: a network's class marginal on unlabeled pixels (π_u) is biased
#   compared with its marginal on labeled pixels (π_l). Measure it: early in training,
#   or when the network underfits, the two can be almost equal.
# - Alignment rescales every pixel's prediction by (π_l / π_u)^α and renormalises; when
#   π_u under-counts a class, this shifts pseudo-labels towards it. α sets the strength,
#   the EMA momentum how quickly π_u follows the batches, and the choice of π_l
#   (predictions or labeled ground truth) which bias is corrected.
# - Two differently initialised networks disagree where they are unsure; cross pseudo
#   supervision lets each learn from the other's (aligned) pseudo-labels.
# - Next: not every pseudo-label is worth learning from — notebook 03 filters them.

# %% [markdown]
# ## References
#
# - T. Wang, Z. Huang, J. Wu, Y. Cai, Z. Li. *Semi-Supervised Medical Image Segmentation with
#   Co-Distribution Alignment.* Bioengineering 10(7):869, 2023. arXiv:2307.12630 — the method of
#   this series.
# - D. Berthelot, N. Carlini, E. D. Cubuk, A. Kurakin, K. Sohn, H. Zhang, C. Raffel. *ReMixMatch:
#   Semi-Supervised Learning with Distribution Alignment and Augmentation Anchoring.* ICLR 2020.
#   arXiv:1911.09785 — distribution alignment.
# - X. Chen, Y. Yuan, G. Zeng, J. Wang. *Semi-Supervised Semantic Segmentation with Cross Pseudo
#   Supervision.* CVPR 2021. arXiv:2106.01226 — two networks teaching each other.
#
# Words: [glossary](../docs/glossary.md). Formulas, their functions and config keys:
# [method.md](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision).
# Teaching the series: [instructor guide](../docs/teaching.md).
