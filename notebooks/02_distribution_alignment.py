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
# Notebook 01 showed that a network trained with few labels gets the class marginal
# wrong on data it has not seen: some classes are predicted too often, others too
# rarely. Its pseudo-labels carry that error into self-training. Co-DA corrects each
# network's pseudo-labels by **aligning** their class distribution on the unlabeled
# pixels to what the labeled pixels say it should be, and lets two differently
# initialised networks teach each other (**cross pseudo supervision**).
#
# **Learning objectives.** After this notebook you can
#
# 1. compare the pseudo-label class shares of a network on unlabeled pixels with the
#    labeled class frequencies (the target), and compute the class marginals π_l and π_u;
# 2. apply the alignment p̃(c) ∝ p(c) · ((π_l(c) + ε) / (π_u(c) + ε))^α, predict what α
#    and the EMA momentum do, and tell the soft reading (mean softmax) from the hard
#    ones (argmax shares) by what they do to the pseudo-labels;
# 3. read, over whole trainings and five seeds (pre-run runs), what each reading does to the
#    pseudo-labels and to the minority class's Dice, and what the default reading does;
# 4. explain how two networks with different initialisations disagree, and how each
#    one's pseudo-labels supervise the other.

# %% [markdown]
# ### Before you start
#
# **Prerequisites.** notebook 01 (class shares, the class marginal); PyTorch tensors of shape (N,
# C, H, W) and broadcasting; what a softmax probability is.
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
# | set-up and 1. training the pair | 22 s | 62 s | not measured |
# | 2. pseudo-labels against the target | < 1 s | 1 s | not measured |
# | 3. the simplex (α slider) | 1 s | 1 s | not measured |
# | 4. the four readings; real predictions (α, momentum) | 1 s | 2 s | not measured |
# | 5. whole trainings, 5 seeds (pre-run; class menu) | 2 s† | 2 s† | not measured |
# | 6. cross pseudo supervision | < 1 s | 1 s | not measured |
# | exercise, recap | < 1 s | < 1 s | not measured |
# | **whole notebook** (kernel start included) | **27 s** + 2 s† | **69 s** + 2 s† | not measured |
#
# † section 5 was added later: measured 2026-12-05 with other jobs on the CPU (load average 2–5,
# one torch thread), an upper bound; `pair="pack"` reads a pre-run pair instead of training
# one (section 1: 28 s for the whole notebook at the workshop size, measured the same way).
#
# **Words** in *italics* or Greek letters: [glossary](../docs/glossary.md). Every formula is
# followed by a link to its row in
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# and to the function that computes it.
# References are at the end of the notebook.

# %% [markdown]
# *Formula of objective 2* (the alignment): [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# (row 3); [`coda_edu.method.alignment.align_distribution`](../coda_edu/method/alignment.py).

# %% tags=["parameters"]
quick: bool = False           # CI size: the steps of coda_edu/presets/quick.yaml on small phantoms
device: str = "auto"
seed: int = 0
solutions: bool = False
iterations: int = 300
labeled_patients: int = 3
imbalance: float = 0.5
data_config: str = ""         # a config file (name in configs/ or a path) whose data replace the two above
main_reading: str = "argmax_share"  # the alignment reading the summary and its test follow (section 4)
alpha: float = 1.0            # default position of the alpha sliders
momentum: float = 0.99        # default position of the momentum slider
pair: str = "train"           # "train": train the pair now (your run); "pack": the course pack's pre-run pair
pack_group: str = "minority"  # the pre-run runs of section 5 (a group of course_pack/groups.yaml with CPS)

# %%
# %matplotlib inline

from pathlib import Path

import numpy as np
import torch
from IPython.display import display
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from coda_course import exercises
from coda_course.analysis import (
    over_under,
    paired,
    predict_pool,
    reading_shares,
    scratch_run_dir,
    share_gap,
    std_text,
)
from coda_course.bias import READINGS
from coda_course.course_pack import CoursePack, default_coda_variant, load_group
from coda_course.widgets import alignment_explorer, simplex_explorer, training_explorer
from coda_edu.config import load_config, preset_path
from coda_edu.method import class_marginal, class_shares, pseudo_labels
from coda_edu.presets import dataset_quick, notebook_quick
from coda_edu.run_folder import load_run_pair
from coda_edu.train import train
from coda_edu.viz.display import show_plotly
from coda_edu.viz.figures import blend, class_colors, plot_class_shares, plot_share_ratios
from coda_edu.viz.simplex import align_toy, ternary_points_figure, ternary_points_static, toy_predictions

quick_size = notebook_quick("02_distribution_alignment") if quick else None  # the one place quick sizes live
steps = quick_size.steps if quick else iterations
if main_reading not in READINGS[1:]:
    raise ValueError(f"main_reading must be one of {', '.join(READINGS[1:])}, not {main_reading!r}")
if pair not in ("train", "pack"):
    raise ValueError(f"pair must be 'train' or 'pack', not {pair!r}")
config_file = (Path(data_config) if Path(data_config).is_file() else preset_path(data_config)) if data_config else None
_ = torch.manual_seed(seed)  # (assigned: the cell echoes nothing)

# %% [markdown]
# ## 1. A partially trained pair of networks
#
# We train networks A (Kaiming initialisation) and B (Xavier initialisation) on the
# labeled synthetic patients only, then look at their predictions on the labeled and
# the unlabeled training slices. Sections 2–4 follow network B; section 6 compares it
# with A. With `pair="pack"` the notebook reads the pair that the course pack holds
# instead (trained once at the workshop size, seed 0; 8-bit weights): for a machine too
# slow to train it in class. The first printed line says which pair you are looking at.

# %%
overrides = [f"seed={seed}", f"train.device={device}", "method.name=supervised", f"train.iterations={steps}",
             f"train.val_every={steps}", "eval.splits=[val]"]
if not data_config:
    overrides += [f"data.labeled_patients={labeled_patients}", f"data.synthetic.imbalance={imbalance}"]
if quick:
    overrides += list(dataset_quick("synthetic")) + quick_size.overrides
if pair == "pack":  # the pre-run pair: the workshop size of this notebook, seed 0
    packed_pair = load_group("pair")[0]
    cfg, data = packed_pair.load_data()
    model_a, model_b = packed_pair.load_pair()
    print(f"pre-run pair (course pack, 8-bit weights): {cfg.data.labeled_patients} labeled patients, imbalance "
          f"{cfg.data.synthetic.imbalance}, {cfg.data.synthetic.resolution}x{cfg.data.synthetic.resolution} slices, "
          f"{cfg.train.iterations} steps, seed {cfg.seed} (the parameters above other than pair are not used)")
else:
    cfg = load_config(config_file, overrides)
    print(f"your run: {cfg.data.labeled_patients} labeled patients, imbalance {cfg.data.synthetic.imbalance}, "
          f"{cfg.data.synthetic.resolution}x{cfg.data.synthetic.resolution} slices, {steps} steps"
          + (f", data from {config_file}" if config_file else ""))
    result = train(cfg, scratch_run_dir(f"nb02-seed{seed}"), progress=True, log=lambda s: None)
    data = result.data
    model_a, model_b = load_run_pair(result.run_dir, "last")
names = data.class_names
probs_l = predict_pool(model_b, data.labeled)
probs_u = predict_pool(model_b, data.unlabeled)
truth_u = data.unlabeled.labels.long()
labels_l = data.labeled.labels.long()

# %% [markdown]
# ## 2. Pseudo-labels against the labeled class frequencies
#
# Turn B's predictions on the unlabeled pixels into pseudo-labels (the argmax) and count
# them per class: the *pseudo-label class shares*. The only class frequencies training
# can know are those of the labeled pixels: they are the *target*. Co-DA's premise is
# that the two differ, because on the labeled images the network has seen the answers
# and on the unlabeled ones it has not. The Co-DA paper expects the small classes to be
# *under*-predicted; on these phantoms, with coda-edu's defaults, networks more often
# *over*-predict the small RV ([method.md, the synthetic minority
# regime](../docs/method.md#the-synthetic-minority-regime)). Pseudo-labels that are off
# target, in either direction, are what alignment corrects. Which way they are off in
# this run, and by how much, is printed below the table.
#
# The table also gives the *soft* marginals: π_l, the mean softmax of B over the labeled
# pixels, and π_u over the unlabeled pixels (the hidden truth of the unlabeled pixels is
# shown for reference; training never sees it).

# %% [markdown]
# *Formulas.* π_l, π_u = mean softmax over the labeled, unlabeled pixels: [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# (row 2); [`coda_edu.method.alignment.class_marginal`](../coda_edu/method/alignment.py). True
# shares: [`coda_edu.method.alignment.class_shares`](../coda_edu/method/alignment.py).

# %%
pi_l, pi_u = class_marginal(probs_l), class_marginal(probs_u)
true_l = class_shares(labels_l, data.num_classes)  # the target: labeled class frequencies
true_u = class_shares(truth_u, data.num_classes)
shares_u = class_shares(pseudo_labels(probs_u)[1], data.num_classes)
print(f"{'class':<11}{'target':>9}{'pseudo-labels':>15}{'ratio':>7}{'pi_l':>9}{'pi_u':>9}{'unlabeled truth':>17}")
for c, t, sh, a, b, tu in zip(names, true_l, shares_u, pi_l, pi_u, true_u):
    print(f"{c:<11}{float(t):9.3%}{float(sh):15.3%}{float(sh) / max(float(t), 1e-12):7.2f}{float(a):9.3%}"
          f"{float(b):9.3%}{float(tu):17.3%}")
ratios = {c: float(sh) / float(t) for c, sh, t in zip(names, shares_u, true_l) if float(t) > 0}
fg = [c for c in names[1:] if c in ratios]
worst = max(fg, key=lambda c: abs(np.log(max(ratios[c], 1e-6))))
print("what this run shows: pseudo-label share / target per class: " + ", ".join(over_under(names, shares_u, true_l)))
print(f"the farthest foreground class is {worst}, {'over' if ratios[worst] > 1 else 'under'}-predicted "
      f"{max(ratios[worst], 1 / max(ratios[worst], 1e-6)):.2f}x; gap to the target: "
      f"{share_gap(shares_u, true_l):.2%} of the pixels would have to change class")
display(plot_class_shares(names, {"target (labeled frequencies)": true_l, "pseudo-labels (argmax of B)": shares_u,
                                  "pi_u (mean softmax of B)": pi_u, "unlabeled truth (hidden)": true_u},
                          title="network B on the unlabeled pixels against the target"))

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
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
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
# ## 4. Alignment on the network's real predictions: four readings
#
# The paper aligns "class-wise marginal predictions"; coda-edu had to choose what that
# means (config key `method.alignment`, [method.md,
# readings](../docs/method.md#readings-we-had-to-choose-and-how-to-switch-them)). Two
# *soft* readings use the formula of section 3 with π_u = the mean softmax:
#
# - `predictions` (the default): π_l = the network's own mean softmax on labeled pixels.
#   It corrects only the *difference* between how the network behaves on labeled and
#   on unlabeled data.
# - `labels`: π_l = the class frequencies of the labeled pixels (the target).
#
# Two *hard* readings act on what the pseudo-labels are made of, the argmax:
#
# - `hard_counts`: the same formula with the argmax shares in place of the mean
#   softmax, w(c) = (target(c) / pseudo-label share(c))^α, clipped to [1/10, 10];
# - `argmax_share`: per-class offsets added to the log-probabilities, searched until the
#   argmax shares match the target.
#
# The mean softmax and the argmax shares can tell different stories (compare the
# `pi_u` and `pseudo-labels` columns above), so the soft readings can leave the
# pseudo-labels almost where they were. The table gives the pseudo-label class shares
# after each reading (statistics from the whole pool; α from the slider's default); the
# lines below it the gap to the target, before and after.

# %% [markdown]
# *Formulas* ([method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)):
# `predictions` and `labels`, rows 2, 2′ and 3,
# [`coda_edu.method.alignment.align_distribution`](../coda_edu/method/alignment.py); `hard_counts`,
# row 3′, [`coda_edu.beyond.argmax_readings.hard_count_weights`](../coda_edu/beyond/argmax_readings.py);
# `argmax_share`, row 3″,
# [`coda_edu.beyond.argmax_readings.match_argmax_shares`](../coda_edu/beyond/argmax_readings.py); all four on
# one pool: [`coda_course.bias.align_pool`](../coda_course/bias.py). Gap = ½ Σ_c |share(c) −
# target(c)|, the smallest share of pixels whose pseudo-label would have to change:
# [`coda_course.analysis.share_gap`](../coda_course/analysis.py).

# %%
after = reading_shares(probs_u, probs_l, labels_l, READINGS, alpha)  # "none": before alignment
print(f"{'class':<11}{'target':>9}" + "".join(f"{r:>14}" for r in READINGS) + f"{'truth':>9}")
for c, name in enumerate(names):
    print(f"{name:<11}{float(true_l[c]):9.3%}" + "".join(f"{after[r][c]:14.3%}" for r in READINGS)
          + f"{float(true_u[c]):9.3%}")
gaps = {r: share_gap(after[r], true_l) for r in READINGS}
print(f"gap to the target before alignment: {gaps['none']:.3%} of the pixels")
for r in READINGS[1:]:
    change = (gaps[r] - gaps["none"]) / gaps["none"] if gaps["none"] > 0 else float("nan")
    print(f"after {r:<13}: {gaps[r]:.3%} of the pixels ({change:+.0%} of the gap); "
          + ", ".join(over_under(names[1:], after[r][1:], true_l[1:])))
closed = {r: 1 - gaps[r] / gaps["none"] if gaps["none"] > 0 else float("nan") for r in READINGS[1:]}
best = max(READINGS[1:], key=lambda r: closed[r])
print(f"what this run shows: {main_reading} takes the gap from {gaps['none']:.3%} to {gaps[main_reading]:.3%} "
      f"of the pixels (closes {closed[main_reading]:.0%} of it); the default, predictions, closes "
      f"{closed['predictions']:.0%}; the reading that closes most here is {best}")
target = true_l.double().numpy()
shown = ("none", "predictions", "hard_counts", "argmax_share")
display(plot_share_ratios(names, {("before alignment" if r == "none" else f"after {r}"): after[r] / target
                                  for r in shown},
                          title=f"network B's pseudo-labels against the target, alpha = {alpha:.2f}"))

# %% [markdown]
# The explorer below uses the soft readings, the ones the formula of section 3 defines.
# During training π_u is an exponential moving average (EMA) over batches,
# π_u ← m·π_u + (1 − m)·(batch marginal). The explorer replays the unlabeled slices as
# batches of 8: the left plot shows the raw batch marginals (thin) and their EMA
# (thick) for the chosen momentum m; the right plot the pseudo-label class shares before
# and after aligning with that π_u, for the chosen target. A momentum near 1 gives a
# smooth but slow estimate (early in training it still remembers the untrained
# network); near 0 it follows every batch.

# %% [markdown]
# *Formula.* π_u ← m·π_u + (1 − m)·(batch marginal): [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# (row 2, μ = `method.marginal_momentum`);
# [`coda_edu.method.alignment.ema_update`](../coda_edu/method/alignment.py).

# %%
batch = 8
batch_marginals = torch.stack([class_marginal(probs_u[i:i + batch]) for i in range(0, len(probs_u) - batch + 1, batch)])
explorer = alignment_explorer(batch_marginals, probs_u, {"predictions": pi_l, "labels": true_l}, names,
                              momentum=momentum, truth=truth_u, alpha=alpha)
explorer.show()

# %% [markdown]
# ## 5. Whole trainings, five seeds (pre-run)
#
# Sections 2–4 looked at one network, trained in a few minutes, at one moment. Whether a
# reading helps shows only over a whole semi-supervised training, where the aligned
# pseudo-labels teach the other network step after step, and only over several seeds:
# more training than a lesson has time for. The course pack holds such runs, trained once
# (`coda-edu course pack`): by default the *synthetic minority regime*
# (`configs/synthetic_minority.yaml`: a setting in which supervised and CPS networks
# under-predict the RV, [benchmarks-synthetic.md](../docs/benchmarks-synthetic.md#the-synthetic-minority-regime)),
# 5 seeds each of supervised training, CPS, Co-DA with the default reading `predictions`
# and with `argmax_share`, and Co-DA's two halves: the filter without alignment ("filter
# only") and `argmax_share` without the filter ("alignment only").
#
# These are **pre-run, 5 seeds**, not your run. Left: the class's pseudo-label share divided
# by its labeled frequency over the whole training (1 = on target; each seed smoothed over
# 50 steps; line: the mean over the seeds, band: their range); right: its test Dice per
# method (dots: the seeds; ◆: the mean ± std). The menus choose the class and
# whether the shares are those of the pseudo-labels the networks learn from (after
# alignment) or of the argmax before alignment.

# %%
pack_runs = load_group(pack_group)  # checksums verified: a damaged pack stops here, in one line
pack_info = CoursePack().info(pack_group)
minority = pack_info["minority_class"]
training = training_explorer(pack_runs, cls=minority)
training.show()

# %% [markdown]
# The table gives, per method, the minority class's share ratio over the last 20 % of the
# steps (mean over seeds and both networks; "—" for supervised training, which makes no
# pseudo-labels) and its test Dice, also paired by seed with CPS (the same two networks
# without alignment or filter). The lines below it say what the default reading does.

# %% [markdown]
# *Formulas.* Share ratio = share of the pixels pseudo-labelled c / labeled frequency of c, logged
# every 10 steps ([method.md, what is logged](../docs/method.md#what-is-logged-to-follow-the-method));
# `coda_course.course_pack.PackedRun.share_ratio`. Paired difference d_s = Dice_s(method) −
# Dice_s(CPS) per seed, then mean ± sample std ([evaluation.md,
# aggregation](../docs/evaluation.md#aggregation)): `coda_course.analysis.paired`.

# %%
method_of = {run.variant: run.config["method"] for run in pack_runs}
variants = list(dict.fromkeys(run.variant for run in pack_runs))
pack_rows = [row for run in pack_runs for row in run.rows()]
pack_split = "test" if any(r["split"] == "test" for r in pack_rows) else "val"
baseline = next((v for v in variants if method_of[v]["name"] == "cps"), None)
if baseline is None:
    raise ValueError(f"pack_group '{pack_group}' has no CPS runs to pair with; this section needs one ('minority')")
late = training.data_at(cls=minority, stage="after")["late"]
n_seeds = len({run.seed for run in pack_runs})
print(f"pre-run, {n_seeds} seeds, {pack_info['title']}: {minority}, share ratio late in training and "
      f"{pack_split} Dice (ensemble, best checkpoint)")
print(f"{'method':<22}{'alignment':>14}{'filter':>18}{'share ratio':>13}{'Dice':>17}{'− ' + baseline + ', paired':>26}")
pairs = {}
for v in variants:
    m = method_of[v]
    dice = [d for d in (run.dice(minority, pack_split) for run in pack_runs if run.variant == v) if d is not None]
    pairs[v] = paired(pack_rows, v, baseline, minority, pack_split) if v != baseline else None
    p = pairs[v]
    ratio = "—" if late[v] is None else f"{late[v]:.2f}"
    vs = "—" if p is None else f"{p['mean']:+.3f} ± {std_text(p['std'])} ({p['positive']}/{p['n']})"
    print(f"{v:<22}{m['alignment']:>14}{m['filter']:>18}{ratio:>13}{np.mean(dice):>10.3f} ± "
          f"{std_text(np.std(dice, ddof=1) if len(dice) > 1 else None)}{vs:>26}")


def closes(v):
    """The share of the baseline's distance to the target (ratio 1) that variant v removes."""
    return 1 - abs(1 - late[v]) / abs(1 - late[baseline]) if late[baseline] != 1 else float("nan")


def noise(p):
    if p["std"] is None:
        return "from a single seed: no spread to compare it with"
    return "larger than its paired std" if abs(p["mean"]) > p["std"] else "within its paired std (noise)"


default_coda = default_coda_variant(pack_runs)
readings = [v for v in variants if method_of[v]["name"] == "coda" and method_of[v]["alignment"] != "none"
            and method_of[v]["filter"] == method_of[default_coda]["filter"]]  # Co-DA with its filter, one per reading
closest = max(readings, key=closes)
direction = "under" if late[baseline] < 1 else "over"
print(f"what the pre-run runs show: without alignment (CPS) the {minority}'s pseudo-labels are {late[baseline]:.2f} "
      f"of its labeled frequency, an {direction}-count. The default reading, "
      f"{method_of[default_coda]['alignment']} ({default_coda}), brings them to {late[default_coda]:.2f}: it removes "
      f"{closes(default_coda):.0%} of that {direction}-count"
      + (f"; {closest} brings them to {late[closest]:.2f} ({closes(closest):.0%})." if closest != default_coda else "."))
unaligned = next((v for v in variants if method_of[v]["name"] == "coda" and method_of[v]["alignment"] == "none"
                  and method_of[v]["filter"] == method_of[default_coda]["filter"]), None)  # Co-DA without alignment
if unaligned:
    print(f"the same Co-DA without alignment ({unaligned}) brings them to {late[unaligned]:.2f}: the default reading "
          f"moves them by {late[default_coda] - late[unaligned]:+.2f} of the labeled frequency beyond what the filter "
          f"does, {closest} by {late[closest] - late[unaligned]:+.2f}")
for v in dict.fromkeys([default_coda, closest]):
    print(f"on the {minority}'s {pack_split} Dice, {v} − {baseline}: {pairs[v]['mean']:+.3f} ± {std_text(pairs[v]['std'])} "
          f"over {pairs[v]['n']} seeds ({pairs[v]['positive']} ahead), {noise(pairs[v])}")
if unaligned:  # what the default reading adds to the filter, paired by seed
    q = paired(pack_rows, default_coda, unaligned, minority, pack_split)
    print(f"on the {minority}'s {pack_split} Dice, {default_coda} − {unaligned}: {q['mean']:+.3f} ± {std_text(q['std'])} "
          f"over {q['n']} seeds ({q['positive']} ahead), {noise(q)}: "
          + ("the default reading adds nothing measurable to the filter here"
             if q["std"] is not None and abs(q["mean"]) <= q["std"] else "the default reading changes what the filter gives"))

# %% [markdown]
# Notebook 04 trains Co-DA as `coda-edu train` does, with the default reading (the line
# above names it). On the real ACDC data (the CPU preset, 5 seeds,
# [benchmarks-acdc.md](../docs/benchmarks-acdc.md#the-plain-acdc-cpu-preset-over-5-seeds)),
# the gain that default Co-DA measured over CPS came from its filter, not from the
# alignment: "filter only" gained as much on the MYO, and "alignment only" changed the mean
# Dice by nothing measurable (`tests/test_course_pack.py` checks this against the runs'
# rows in `benchmarks/evidence/`).

# %% [markdown]
# ## 6. Two networks, two opinions: cross pseudo supervision
#
# A and B see the same images but start from different weights, so their mistakes
# differ. Where they disagree (magenta below), at least one of them is wrong. In cross pseudo
# supervision, **A is trained on B's pseudo-labels and B on A's**: each network's errors
# are corrected by the other's opinion instead of being reinforced by its own. Co-DA
# aligns each network's predictions before they become the other's targets.

# %% [markdown]
# *Formulas.* Pseudo-labels (row 4):
# [`coda_edu.method.alignment.pseudo_labels`](../coda_edu/method/alignment.py); cross supervision
# loss (rows 6–7): [`coda_edu.method.losses.masked_cross_entropy`](../coda_edu/method/losses.py),
# [`coda_edu.method.cps.CrossPseudoSupervision`](../coda_edu/method/cps.py); all in
# [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision).

# %%
probs_u_a = predict_pool(model_a, data.unlabeled)
labels_a, labels_b = pseudo_labels(probs_u_a)[1], pseudo_labels(probs_u)[1]
disagree = labels_a != labels_b
print(f"A and B disagree on {disagree.float().mean():.2%} of the unlabeled pixels; "
      f"on the foreground of either: {disagree[(labels_a > 0) | (labels_b > 0)].float().mean():.1%}")
index = int(((truth_u > 0).flatten(1).sum(1)).argmax())
image = data.unlabeled.images[index, 0].numpy()
fig = Figure(figsize=(7.5, 7.6))  # 2 x 2: readable at the width of a page
axes = fig.subplots(2, 2).ravel()
panels = [("B's pseudo-labels: target for A", labels_b[index]), ("A's pseudo-labels: target for B", labels_a[index]),
          ("hidden truth", truth_u[index])]
for ax, (title, lab) in zip(axes, panels):
    ax.imshow(blend(image, lab.numpy(), names), interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
axes[3].imshow(image, cmap="gray")
axes[3].imshow(np.ma.masked_where(~disagree[index].numpy(), disagree[index].numpy()), cmap=ListedColormap(["#ff00ff"]),
               alpha=0.9)
axes[3].set_title("disagreement of A and B", fontsize=10)
axes[3].axis("off")
handles = [Rectangle((0, 0), 1, 1, color=col) for col in class_colors(names)[1:]] + [Rectangle((0, 0), 1, 1, color="#ff00ff")]
fig.legend(handles, list(names[1:]) + ["A and B disagree"], loc="lower center", ncol=len(handles), fontsize=9,
           frameon=False)
fig.tight_layout(rect=(0, 0.05, 1, 1))
display(fig)


# %% [markdown]
# ## Exercise: write the alignment step
#
# Complete `my_align(probs, pi_l, pi_u, alpha)`: `probs` has shape (N, C, H, W) and sums
# to 1 over dim 1; `pi_l`, `pi_u` have shape (C,). Return the aligned probabilities.

# %% [markdown]
# *Formula:* [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
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
# - Co-DA's premise: the pseudo-label class shares of a network on unlabeled pixels
#   differ from the labeled class frequencies. Measure the direction, do not assume it:
#   the paper expects small classes to be under-predicted, and this run printed which
#   classes were over- and which under-predicted.
# - Alignment rescales every pixel's prediction by (π_l / π_u)^α and renormalises: a
#   class that π_u over-counts is pushed down, one it under-counts is pushed up. α sets
#   the strength, the EMA momentum how quickly π_u follows the batches, and the choice
#   of π_l (predictions or labeled ground truth) which bias is corrected.
# - Soft and hard readings differ: a correction of the mean softmax need not move the
#   argmax, so the printed gaps say which reading moves the pseudo-labels towards the
#   target in this run; over whole trainings and five seeds (section 5, pre-run) the lines
#   say how much of the minority class's under-count the default reading removes, what each
#   reading does to its Dice, and whether the default reading adds anything to the filter.
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
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision).
# Teaching the series: [instructor guide](../docs/teaching.md).
