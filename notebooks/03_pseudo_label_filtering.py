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
# # 03 · Which pseudo-labels should a network learn from?
#
# Pseudo-labels are the network's own guesses on unlabeled images. Some are wrong, and
# learning from wrong ones reinforces the mistakes. The usual remedy keeps only pixels
# whose confidence passes a **fixed threshold** such as 0.95. Co-DA keeps a pixel when
# its confidence is at least the **expected confidence of its class**
# (over-expectation), so every class keeps its better pixels, also the classes the
# network is never very sure about.
#
# **Learning objectives.** After this notebook you can
#
# 1. measure the noise of pseudo-labels per class against the hidden truth;
# 2. read confidence histograms of correct and wrong pseudo-labels;
# 3. compare no filter, a fixed threshold and the over-expectation filter by the
#    coverage and the precision they give each class, and explain what a fixed
#    threshold does to minority classes.
#
# The "unlabeled" images here are synthetic, so their true labels are known. They are
# only used to *measure* pseudo-label quality, never to train.

# %% [markdown]
# ### Before you start
#
# **Prerequisites.** notebooks 01 and 02 (pseudo-labels, the class marginal); boolean masks in
# PyTorch; precision and recall.
#
# **Time** to run all cells, per section, on a 2-core CPU with nothing else running
# (papermill's cell timings, 2026-11-26, written by `benchmarks/notebook_sections.py`; on a
# busy laptop expect up to a few times more; see
# [benchmarks-notebooks.md](../docs/benchmarks-notebooks.md#notebooks)). In a 90-minute
# workshop plan about 15 minutes for reading, the controls and the
# exercises ([instructor guide](../docs/teaching.md#schedule)).
#
# | section | quick (`quick=True`) | workshop (defaults) | GPU |
# |---|---|---|---|
# | set-up and 1. training, pseudo-labels | 21 s | 57 s | not measured |
# | 2. noise per class | < 1 s | < 1 s | not measured |
# | 3. confidence histograms | 1 s | 1 s | not measured |
# | 4. three filters (filter menu) | 1 s | 1 s | not measured |
# | exercise, recap | < 1 s | < 1 s | not measured |
# | **whole notebook** (kernel start included) | **26 s** | **62 s** | not measured |
#
# **Words** in *italics* or Greek letters: [glossary](../docs/glossary.md). Every formula is
# followed by a link to its row in
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# and to the function that computes it.
# References are at the end of the notebook.

# %% tags=["parameters"]
quick: bool = False           # CI size: the steps of coda_edu/presets/quick.yaml on small phantoms
device: str = "auto"
seed: int = 0
solutions: bool = False
iterations: int = 300
labeled_patients: int = 3
imbalance: float = 0.5
threshold: float = 0.95       # the fixed threshold compared with over-expectation
pair: str = "train"           # "train": train the pair now (your run); "pack": the course pack's pre-run pair

# %%
# %matplotlib inline

import numpy as np
import torch
from IPython.display import display

from coda_course import exercises
from coda_course.analysis import compare_filters, per_class_quality, predict_pool, scratch_run_dir
from coda_course.course_pack import load_group
from coda_course.widgets import mask_explorer
from coda_edu.config import load_config
from coda_edu.method import class_expectations, pseudo_labels
from coda_edu.presets import dataset_quick, notebook_quick
from coda_edu.run_folder import load_run_pair
from coda_edu.train import train
from coda_edu.viz.figures import plot_confidence_histograms, plot_filter_comparison

quick_size = notebook_quick("03_pseudo_label_filtering") if quick else None  # the one place quick sizes live
steps = quick_size.steps if quick else iterations
if pair not in ("train", "pack"):
    raise ValueError(f"pair must be 'train' or 'pack', not {pair!r}")
_ = torch.manual_seed(seed)  # (assigned: the cell echoes nothing)

# %% [markdown]
# ## 1. Pseudo-labels of a network trained with few labels
#
# A supervised pair trained on three labeled patients; we look at the pseudo-labels of
# network B on the unlabeled slices. With `pair="pack"` the notebook reads the pair the
# course pack holds (the same one notebook 02 can read: workshop size, seed 0, 8-bit
# weights) instead of training it; the first printed line says which pair this is.

# %%
overrides = [f"seed={seed}", f"train.device={device}", "method.name=supervised", f"train.iterations={steps}",
             f"train.val_every={steps}", f"data.labeled_patients={labeled_patients}",
             f"data.synthetic.imbalance={imbalance}", "eval.splits=[val]"]
if quick:
    overrides += list(dataset_quick("synthetic")) + quick_size.overrides
if pair == "pack":
    packed_pair = load_group("pair")[0]
    cfg, data = packed_pair.load_data()
    _, model_b = packed_pair.load_pair()
    print(f"pre-run pair (course pack, 8-bit weights): {cfg.data.labeled_patients} labeled patients, "
          f"{cfg.data.synthetic.resolution}x{cfg.data.synthetic.resolution} slices, {cfg.train.iterations} steps, "
          f"seed {cfg.seed} (the parameters above other than pair and threshold are not used)")
else:
    cfg = load_config(None, overrides)
    print(f"your run: {cfg.data.labeled_patients} labeled patients, {cfg.data.synthetic.resolution}x"
          f"{cfg.data.synthetic.resolution} slices, {steps} steps")
    result = train(cfg, scratch_run_dir(f"nb03-seed{seed}"), progress=True, log=lambda s: None)
    data = result.data
    _, model_b = load_run_pair(result.run_dir, "best")
names = data.class_names
probs = predict_pool(model_b, data.unlabeled)  # network B, as in notebook 02
truth = data.unlabeled.labels.long()
confidence, labels = pseudo_labels(probs)

# %% [markdown]
# ## 2. How noisy are they, per class?
#
# *Precision* of pseudo-class k: of the pixels labeled k, the share that truly are k.
# *Recall*: of the pixels that truly are k, the share labeled k.

# %% [markdown]
# *Formulas.* Precision(k) = |labeled k ∩ truly k| / |labeled k|, recall(k) = |labeled k ∩ truly
# k| / |truly k|:
# [`coda_edu.diagnostics.pseudo_label_precision_recall`](../coda_edu/diagnostics.py)
# (logged during training, [method.md, what is
# logged](../docs/method.md#what-is-logged-to-follow-the-method)).

# %%
quality = per_class_quality(labels, truth, data.num_classes)
print(f"{'class':<11}{'share':>9}{'precision':>11}{'recall':>9}")
for c, name in enumerate(names):
    print(f"{name:<11}{quality['share'][c]:9.3%}{quality['precision'][c]:11.3f}{quality['recall'][c]:9.3f}")
assigned = [c for c in range(1, len(names)) if np.isfinite(quality["precision"][c])]
if assigned:
    noisiest = min(assigned, key=lambda c: quality["precision"][c])
    print(f"what this run shows: the least precise pseudo-class is {names[noisiest]} "
          f"(precision {quality['precision'][noisiest]:.3f}: {1 - quality['precision'][noisiest]:.1%} of its "
          f"pseudo-labels are another class); background: {quality['precision'][0]:.3f}")
else:
    print("what this run shows: no pixel has a foreground pseudo-label (too little training: train for more steps)")

# %% [markdown]
# ## 3. Confidence of correct and wrong pseudo-labels
#
# If confidence separated right from wrong perfectly, a threshold would solve the
# problem. Does it? Per pseudo-class, the histograms compare the confidence of correct
# and wrong pseudo-labels; the lines below them count how many of each are above the
# fixed threshold (the `threshold` parameter).

# %%
correct = (labels == truth).numpy().reshape(-1)
display(plot_confidence_histograms(confidence.numpy().reshape(-1), correct, labels.numpy().reshape(-1), names))
expected = class_expectations(confidence, labels, data.num_classes)
print("expected (mean) confidence per pseudo-class:", ", ".join(f"{n} {float(e):.3f}" for n, e in zip(names, expected)))
flat_conf, flat_labels = confidence.numpy().reshape(-1), labels.numpy().reshape(-1)
for c, name in enumerate(names):
    sel = flat_labels == c
    right, wrong = sel & correct, sel & ~correct
    above = lambda m: f"{np.mean(flat_conf[m] >= threshold):.1%} of {int(m.sum())}" if m.any() else "none"
    print(f"what this run shows, {name:<11}: confidence >= {threshold}: correct {above(right)}, wrong {above(wrong)}")

# %% [markdown]
# ## 4. Three filters compared
#
# *Coverage*: the share of a class's pseudo-labels that the filter keeps (how much the
# class can still learn from). *Precision*: how many of the kept ones are right.

# %% [markdown]
# *Formulas* ([method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)):
# confidence q = max_c p(c), row 4,
# [`coda_edu.method.alignment.pseudo_labels`](../coda_edu/method/alignment.py); fixed threshold q
# ≥ τ, row 5′,
# [`coda_edu.method.filtering.fixed_threshold_mask`](../coda_edu/method/filtering.py);
# over-expectation q_i ≥ e_k (e_k the mean confidence of the pixels with pseudo-label k), row 5,
# [`coda_edu.method.filtering.class_expectations`](../coda_edu/method/filtering.py),
# [`coda_edu.method.filtering.over_expectation_mask`](../coda_edu/method/filtering.py); coverage
# of class k = kept / all pseudo-labels k,
# [`coda_edu.diagnostics.mask_coverage`](../coda_edu/diagnostics.py).

# %%
rows = compare_filters(probs, truth, names, threshold)
print(f"{'filter':<18}{'class':<11}{'coverage':>10}{'precision':>11}")
for r in rows:
    print(f"{r['filter']:<18}{r['class']:<11}{r['coverage']:10.3f}{r['precision']:11.3f}")
display(plot_filter_comparison(rows, names))

# What this run shows, computed from the rows above (coverage is n/a for a class no pixel is assigned to).
cov = {(r["filter"], r["class"]): r["coverage"] for r in rows}
for f in ("fixed", "over_expectation"):
    parts = [f"{c} {cov[(f, c)]:.1%}" if cov[(f, c)] == cov[(f, c)] else f"{c} n/a" for c in names]
    print(f"kept by {f:<17}: " + ", ".join(parts))
small = [c for c in names[1:] if cov[("fixed", c)] == cov[("fixed", c)] and cov[("over_expectation", c)] == cov[("over_expectation", c)]]
more = [c for c in small if cov[("over_expectation", c)] > cov[("fixed", c)]]
if small:
    print(f"the over-expectation filter keeps more of {len(more)} of the {len(small)} foreground classes "
          f"with pseudo-labels" + (f" ({', '.join(more)})" if more else ""))
else:
    print("this model assigns no pixel to a foreground class, so the filters cannot differ there "
          "(too little training: train for more steps)")

# %% [markdown]
# Compare the two lines above. A fixed threshold keeps a pixel only when the network is
# at least that sure, so a class the network is rarely sure about can lose most of its
# unlabeled signal. The over-expectation filter keeps, in each class, the pixels at or
# above that class's own mean confidence, so every class with pseudo-labels keeps some of
# them (the most confident pixel is never below the mean). Whether that costs precision
# is in the table's precision column, and which of the two helps training more is an
# empirical question (`benchmarks/quality.py` compares them).
#
# Explore the masks on individual images (the first picture is the default view):

# %%
explorer = mask_explorer(data.unlabeled.images[:, 0].numpy(), probs, truth, names, threshold=threshold)
explorer.show()

# %% [markdown]
# **Predict, then switch the filter.** Over all unlabeled images, which filter keeps a
# larger share of the *foreground* pseudo-labels (RV, MYO and LV together): `"fixed"` (at
# the threshold on the slider) or `"over_expectation"`? Write your guess, then switch the
# filter menu between the two, read "kept per class" in the title, and run the check.

# %%
my_prediction = ""  # "fixed" or "over_expectation"

if solutions:
    my_prediction = exercises.predicted("filter_foreground", explorer)
exercises.check_prediction("filter_foreground", my_prediction, explorer)


# %% [markdown]
# ## Exercise: the over-expectation mask
#
# Write `my_mask(confidence, labels, num_classes)`: `confidence` and `labels` have the
# same shape; keep (True) a pixel when its confidence is at least the mean confidence of
# all pixels with the same pseudo-label.

# %% [markdown]
# *Formula:* [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# (row 5). Once your check passes, compare with
# [`coda_edu.method.filtering.over_expectation_mask`](../coda_edu/method/filtering.py).

# %%
def my_mask(confidence: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError


if solutions:
    my_mask = exercises.solution("over_expectation_mask")
exercises.check("over_expectation_mask", my_mask)

# %% [markdown]
# ## Recap
#
# - Pseudo-labels are not equally reliable across classes (the precision table says which
#   class is noisiest in your run), and confidence alone does not separate right from
#   wrong (the counts above the threshold say how far it goes).
# - A fixed threshold keeps only the pixels the network is very sure about; a class it
#   is rarely that sure about can lose most of its unlabeled signal (the coverage lines
#   above say how much, for this run).
# - The over-expectation filter compares each pixel with its own class's expected
#   confidence, so every class with pseudo-labels keeps its more confident part.
# - In Co-DA the mask of network B's aligned pseudo-labels weights the cross-entropy that
#   trains network A (OECE), and vice versa. Notebook 04 runs the whole method.

# %% [markdown]
# ## References
#
# - T. Wang, Z. Huang, J. Wu, Y. Cai, Z. Li. *Semi-Supervised Medical Image Segmentation with
#   Co-Distribution Alignment.* Bioengineering 10(7):869, 2023. arXiv:2307.12630 — the method of
#   this series.
# - K. Sohn, D. Berthelot, C.-L. Li, Z. Zhang, N. Carlini, E. D. Cubuk, A. Kurakin, H. Zhang, C.
#   Raffel. *FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence.*
#   NeurIPS 2020. arXiv:2001.07685 — the fixed confidence threshold.
# - X. Chen, Y. Yuan, G. Zeng, J. Wang. *Semi-Supervised Semantic Segmentation with Cross Pseudo
#   Supervision.* CVPR 2021. arXiv:2106.01226 — two networks teaching each other.
#
# Words: [glossary](../docs/glossary.md). Formulas, their functions and config keys:
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision).
# Teaching the series: [instructor guide](../docs/teaching.md).
