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
# # 01 · Class imbalance in medical image segmentation
#
# Organs and lesions are small next to the background. A network trained on few
# labeled images is rarely wrong about the background and much more often wrong about
# the small structures: it misses some of their pixels, or predicts them where they are
# not, or both. This notebook measures the imbalance, and which of these happens to which
# class in the run you train (it is not the same at every size and seed).
#
# **Learning objectives.** After this notebook you can
#
# 1. measure pixel class shares in a segmentation dataset and explain why they matter;
# 2. read a per-class Dice table and a confusion matrix of a model trained with few labels;
# 3. compare a model's *predicted* class marginal with the *true* one — the quantity that
#    Co-DA's distribution alignment (notebook 02) acts on.
#
# Everything runs on a laptop CPU. Real data (ACDC, CaDIS) is used when it is available
# (set `CODA_EDU_DATA_DIR`, see `data_scripts/README.md`); otherwise those parts say so
# and the notebook carries on with the synthetic phantoms.

# %% [markdown]
# ### Before you start
#
# **Prerequisites.** Python and NumPy; PyTorch tensors (shapes, `argmax`); what a segmentation
# mask is. No GPU and no data download needed.
#
# **Time** to run all cells, per section, on a 2-core CPU with nothing else running
# (papermill's cell timings, 2026-11-26, written by `benchmarks/notebook_sections.py`; on a
# busy laptop expect up to a few times more; see
# [benchmarks-notebooks.md](../docs/benchmarks-notebooks.md#notebooks)). In a 90-minute
# workshop plan about 25 minutes for reading, the controls and the
# exercises ([instructor guide](../docs/teaching.md#schedule)).
#
# | section | quick (`quick=True`) | workshop (defaults) | GPU |
# |---|---|---|---|
# | set-up and 1. synthetic phantoms | 4 s | 3 s | not measured |
# | 2.–3. ACDC, CaDIS (real data only) | < 1 s | < 1 s | not measured |
# | 4. supervised model (training) | 24 s | 75 s | not measured |
# | exercises, recap | < 1 s | < 1 s | not measured |
# | **whole notebook** (kernel start included) | **31 s** | **81 s** | not measured |
#
# **Words** in *italics* or Greek letters: [glossary](../docs/glossary.md). Every formula is
# followed by a link to its row in
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# and to the function that computes it.
# References are at the end of the notebook.

# %% tags=["parameters"]
quick: bool = False           # CI size: the steps of coda_edu/presets/quick.yaml on small phantoms
device: str = "auto"          # "auto" picks CUDA, then Apple MPS, then the CPU
seed: int = 0
solutions: bool = False       # fill in the exercise's reference answer
imbalance: float = 0.5        # from 0 (large heart) to 1 (small heart, thin RV)
labeled_patients: int = 2     # labeled synthetic patients for the supervised model
iterations: int = 400         # training steps of the supervised model
data_dir: str = ""            # folder with ACDC/ and CaDIS/ (empty: $CODA_EDU_DATA_DIR)

# %%
# %matplotlib inline
import os
from pathlib import Path

import torch
from IPython.display import display

from coda_course import exercises
from coda_course.analysis import scratch_run_dir, split_confusion_and_marginals
from coda_course.widgets import imbalance_explorer
from coda_edu.config import load_config
from coda_edu.data.synthetic import CLASS_NAMES, generate_phantoms, pixel_class_shares
from coda_edu.evaluate import format_table
from coda_edu.presets import dataset_quick, notebook_quick
from coda_edu.run_folder import load_run_pair
from coda_edu.train import train
from coda_edu.viz.figures import plot_class_shares, plot_confusion_matrix

quick_size = notebook_quick("01_class_imbalance") if quick else None  # the one place quick sizes live
steps = quick_size.steps if quick else iterations
data_root = Path(data_dir or os.environ.get("CODA_EDU_DATA_DIR", "") or "/nonexistent")
_ = torch.manual_seed(seed)  # (assigned: the cell echoes nothing)
print(f"training steps: {steps}, real data folder: {data_root if data_root.is_dir() else 'not available'}")

# %% [markdown]
# ## 1. How small are the structures? The synthetic phantoms
#
# coda-edu's embedded data are short-axis cardiac-like slices: right ventricle (RV),
# myocardium (MYO) and left ventricle (LV) inside a body section. The `imbalance` knob
# shrinks the heart relative to the field of view. The bar chart uses a **log scale**:
# on a linear scale the minority classes would be invisible.

# %% [markdown]
# *Formula.* Class share of class c = (pixels labeled c) / (all pixels): [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# (row 2′, the labeled ground-truth frequencies);
# [`coda_edu.method.alignment.class_shares`](../coda_edu/method/alignment.py).

# %%
settings = [0.0, 0.5, 1.0] if imbalance in (0.0, 0.5, 1.0) else [0.0, imbalance, 1.0]
shares = {}
for value in settings:
    _, labels = generate_phantoms(12, 8, 64, imbalance=value, seed=seed)
    shares[f"imbalance {value:.2f}"] = pixel_class_shares(labels, 4)
for name, s in shares.items():
    print(f"{name}: " + ", ".join(f"{c} {v:.2%}" for c, v in zip(CLASS_NAMES, s)))
display(plot_class_shares(CLASS_NAMES, shares, title="pixel class shares of the phantoms"))

# %% [markdown]
# Move the slider to see how the shares and the picture change (the slider starts at the
# notebook's `imbalance` parameter; the figure below it is redrawn in place).
#
# **Predict first.** Before you move the slider: how many times smaller is the RV's pixel
# share at imbalance 1 than at imbalance 0? `"a"` less than 3 times, `"b"` 3 to 30 times,
# `"c"` more than 30 times. Write your guess in the cell after the explorer, then move the
# slider to 0 and to 1 and run the check.

# %%
explorer = imbalance_explorer(seed=seed, imbalance=imbalance)
explorer.show()

# %%
my_prediction = ""  # "a", "b" or "c"

if solutions:
    my_prediction = exercises.predicted("rv_shrink", explorer)
exercises.check_prediction("rv_shrink", my_prediction, explorer)

# %% [markdown]
# ## 2. Real cine-MRI: ACDC
#
# The same three structures in the 1,312 training slices of the Automated Cardiac
# Diagnosis Challenge (when the data is available).

# %%
from coda_edu.data.acdc import label_shares

acdc_root = data_root / "ACDC"
if (acdc_root / "train.list").is_file():
    acdc_shares = label_shares(acdc_root)
    print(", ".join(f"{c} {v:.2%}" for c, v in acdc_shares.items()))
    display(plot_class_shares(list(acdc_shares), {"ACDC training slices": list(acdc_shares.values())},
                              title="ACDC pixel class shares"))
else:
    print(f"ACDC not found under {acdc_root}: skipping (see data_scripts/README.md).")

# %% [markdown]
# ## 3. Surgical video: CaDIS, across the whole dataset
#
# CaDIS frames have no background: anatomy, instruments and "other" classes share
# every pixel. `frame_index.csv` holds the per-class pixel counts of all 4,670 frames,
# so the shares of the whole dataset can be computed without the images. Instruments
# are the minority here (task II groups the 36 ids into 17 classes).

# %%
from coda_edu.data.cadis import frame_index_class_shares

index = data_root / "CaDIS" / "frame_index.csv"
if index.is_file():
    cadis_shares = frame_index_class_shares(index, task=2)
    ordered = sorted(cadis_shares.items(), key=lambda kv: -kv[1])
    print("largest:", ", ".join(f"{c} {v:.1%}" for c, v in ordered[:3]))
    print("smallest:", ", ".join(f"{c} {v:.3%}" for c, v in ordered[-3:]))
    display(plot_class_shares([c for c, _ in ordered], {"CaDIS, all frames": [v for _, v in ordered]},
                              title="CaDIS task II pixel class shares"))
else:
    print(f"{index} not found: skipping.")

# %% [markdown]
# ## 4. A supervised model trained with few labels
#
# Two networks (A and B, differently initialised) are trained on the labeled patients
# only. The table shows the test Dice per class; the confusion matrix shows where the
# minority pixels go.

# %% [markdown]
# *Formulas.* Dice of class c = 2|P ∩ T| / (|P| + |T|), P the predicted and T the true pixels of
# c: [evaluation.md, metrics](../docs/evaluation.md#metrics), `coda_edu.metrics.dice_iou`.
# Predicted class marginal = mean softmax over the test pixels: [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# (row 2); [`coda_edu.method.alignment.class_marginal`](../coda_edu/method/alignment.py).

# %%
overrides = [f"seed={seed}", f"train.device={device}", "method.name=supervised",
             f"data.labeled_patients={labeled_patients}", f"data.synthetic.imbalance={imbalance}",
             f"train.iterations={steps}", f"train.val_every={max(steps // 4, 1)}", "train.log_every=10"]
if quick:
    overrides += list(dataset_quick("synthetic")) + quick_size.overrides
cfg = load_config(None, overrides)
result = train(cfg, scratch_run_dir(f"nb01-supervised-seed{seed}"), progress=True, log=lambda s: None)
print(f"your run: supervised pair, {cfg.data.labeled_patients} labeled patients, {steps} steps, "
      f"best checkpoint at step {result.state.best_step} (chosen on the validation patients)")

# %%
records = [r for r in result.evaluation["records"] if r["split"] == "test" and r["checkpoint"] == "best"]
print(format_table(records, result.data.class_names, "dice", title="test Dice (best checkpoint)"))

# %%
model_a, model_b = load_run_pair(result.run_dir, "best")
cm, predicted, true = split_confusion_and_marginals(model_a, model_b, result.data, device="cpu")
display(plot_confusion_matrix(cm, result.data.class_names, title="test pixels, ensemble (rows sum to 1)"))

# %%
# What this matrix shows, computed: each class's recall and where its missed pixels go.
names = result.data.class_names
recall = {}
for i, name in enumerate(names):
    row = cm[i] / max(cm[i].sum(), 1)  # the row of true class i, as fractions
    recall[name] = float(row[i])
    leaks = [(float(row[j]), names[j]) for j in range(len(names)) if j != i]
    share, where = max(leaks)
    print(f"{name:<11} recall {recall[name]:6.1%}; its largest leak goes to {where} ({share:.1%} of its pixels)")
# The rarest class and how it fares against the others, from the same numbers and the Dice table.
true_share = dict(zip(names, (float(t) for t in true)))
dice = {r["class"]: r["dice"] for r in records if r["model"] == "ensemble"}
rare = min(names[1:], key=true_share.get)
lowest_recall, lowest_dice = min(names[1:], key=recall.get), min(names[1:], key=dice.get)
print(f"what this run shows: the rarest class is {rare} ({true_share[rare]:.2%} of the test pixels); "
      f"foreground recall ranges from {min(recall[c] for c in names[1:]):.1%} ({lowest_recall}) to "
      f"{max(recall[c] for c in names[1:]):.1%}, against {recall[names[0]]:.1%} for {names[0]}; "
      + (f"the rarest class also has the lowest test Dice ({dice[rare]:.3f})" if lowest_dice == rare else
         f"the lowest test Dice is {lowest_dice}'s ({dice[lowest_dice]:.3f}; {rare}: {dice[rare]:.3f})"))

# %% [markdown]
# Each row is a true class; the diagonal is its recall. The lines above say, for this
# run, how much of each class the ensemble finds, where each class's errors go, and
# whether the rarest class is the one that suffers most (it need not be: a network can
# also over-predict a small class, which costs Dice through false positives rather than
# recall).
#
# ## 5. Predicted versus true class marginal
#
# Averaging the softmax over all test pixels gives the model's *predicted marginal*.
# With few labels it departs from the true class shares on data the model has not
# seen. Look at the ratios: which classes are under-estimated, which over-estimated?
# Predict first, then read the line under the table.

# %%
ratios = {}
for c, p, t in zip(result.data.class_names, predicted, true):
    ratios[c] = float(p) / max(float(t), 1e-12)
    print(f"{c:<11} predicted {p:7.3%}   true {t:7.3%}   ratio {ratios[c]:5.2f}")
fg = {c: r for c, r in ratios.items() if c != result.data.class_names[0]}
low, high = min(fg, key=fg.get), max(fg, key=fg.get)
print(f"what this run shows: {low} is the most under-estimated (ratio {fg[low]:.2f}), "
      f"{high} the most over-estimated (ratio {fg[high]:.2f})"
      + ("" if fg[high] > 1 else "; every foreground class is under-estimated")
      + ("" if fg[low] < 1 else "; every foreground class is over-estimated"))
display(plot_class_shares(result.data.class_names, {"predicted (mean softmax)": predicted, "true": true},
                          title="class marginal on the test pixels"))


# %% [markdown]
# ## Exercise: compute the class shares yourself
#
# Write `my_class_shares(labels, num_classes)`: given an integer tensor of labels of any
# shape, return a tensor with one value per class, the fraction of pixels of that
# class (classes that do not occur get 0). Hint: `torch.bincount`.

# %%
def my_class_shares(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError


if solutions:
    my_class_shares = exercises.solution("class_shares")
exercises.check("class_shares", my_class_shares)

# %% [markdown]
# ## Recap
#
# - Pixel class shares of medical segmentation data are extremely skewed: the
#   structures of interest are a few percent of the image or less (use log scales).
# - With few labels, a supervised model finds some foreground classes much less
#   reliably than the background; the recall lines and the Dice table say which class
#   loses most in your run, and the confusion matrix where its errors go.
# - Its predicted class marginal on unseen data departs from the true one, in a
#   direction the ratios above tell (a small class can be over- as well as
#   under-estimated). Notebook 02 uses such marginals to correct pseudo-labels.

# %% [markdown]
# ## References
#
# - T. Wang, Z. Huang, J. Wu, Y. Cai, Z. Li. *Semi-Supervised Medical Image Segmentation with
#   Co-Distribution Alignment.* Bioengineering 10(7):869, 2023. arXiv:2307.12630 — the method of
#   this series.
# - X. Chen, Y. Yuan, G. Zeng, J. Wang. *Semi-Supervised Semantic Segmentation with Cross Pseudo
#   Supervision.* CVPR 2021. arXiv:2106.01226 — two networks teaching each other.
#
# Words: [glossary](../docs/glossary.md). Formulas, their functions and config keys:
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision).
# Teaching the series: [instructor guide](../docs/teaching.md).
