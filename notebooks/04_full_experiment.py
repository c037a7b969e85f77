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
# # 04 · A full experiment: Co-DA against its baselines
#
# One parameterised experiment, from data to result table: train a method, follow its
# learning curves, read the per-class results of network A, network B and their
# ensemble, look at the segmentations, and compare with the baselines trained the same
# way. Researchers run this notebook with papermill (`coda-edu notebooks sweep` runs it
# over a grid); students change the parameters below.
#
# **Learning objectives.** After this notebook you can
#
# 1. run a complete semi-supervised experiment and find everything it wrote in its run
#    folder (config, metrics, checkpoints, `eval.json`, figures);
# 2. read learning curves: supervised and unsupervised losses, the ramp-up λ(t), the
#    share of pseudo-labels the filter keeps, and the validation Dice;
# 3. compare methods fairly: same data, same steps, checkpoints chosen on validation
#    data, results reported on the test split.

# %% [markdown]
# ### Before you start
#
# **Prerequisites.** notebooks 01–03 (marginals, alignment, filtering); reading a line plot with a
# log axis; what validation and test splits are for.
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
# | set-up and 1. train Co-DA (or read a finished run) | 16 s | 107 s | not measured |
# | 2. learning curves (step slider) | 1 s | 1 s | not measured |
# | 3.–4. results per class, segmentations | < 1 s | < 1 s | not measured |
# | 5. against the baselines (trains two more) | 23 s | 163 s | not measured |
# | exercise, recap | < 1 s | < 1 s | not measured |
# | **whole notebook** (kernel start included) | **42 s** | **275 s** | not measured |
#
# **Real data** (`dataset="acdc"`, needs `CODA_EDU_DATA_DIR`): the notebook trains the CPU preset
# `configs/acdc_cpu.yaml` whole, Co-DA with the options beyond the paper
# ([method.md](../docs/method.md#beyond-the-paper)), 2,500 steps: about 10 minutes on 2 cores
# (measured 568–658 s per run on an AVX2 CPU, 4 of 5 runs under 600 s), then section 5 trains supervised (about 5 minutes) and CPS with
# the same options (about 10). Over 5 seeds the preset's Co-DA scores 0.785 ± 0.008 validation
# mean Dice, CPS with the same options 0.789 ± 0.007 and supervised 0.732 ± 0.007
# ([benchmarks-acdc.md](../docs/benchmarks-acdc.md#acdc-on-the-cpu-the-options-beyond-the-paper-5-seeds));
# notebook 05 with `-p pack_group acdc` compares those 15 runs without training anything.
# On a CPU with native bf16 (AVX512-BF16 or AMX), `overrides=["train.precision=bf16",
# "train.channels_last=true", "train.iterations=3200"]` trains the faster recipe, for the baselines
# too: 485–514 s per Co-DA run on a 2-core AVX-512 CPU, Co-DA 0.795 ± 0.004, CPS 0.799 ± 0.004,
# supervised 0.755 ± 0.011 over 5 seeds
# ([benchmarks-acdc.md](../docs/benchmarks-acdc.md#acdc-on-the-cpu-the-options-beyond-the-paper-5-seeds),
# "bf16, channels-last and 3,200 steps"); elsewhere bf16 is 7 to 10
# times slower than fp32, and the run prints a warning.
#
# **Words** in *italics* or Greek letters: [glossary](../docs/glossary.md). Every formula is
# followed by a link to its row in
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# and to the function that computes it.
# References are at the end of the notebook.

# %% [markdown]
# *Formula of objective 2*: the ramp-up λ(t) = λ_max·exp(−5(1 − t/T)²) for t < T and λ_max
# after, where **T is the ramp-up length**, `method.rampup` × `train.iterations` (40 % of the
# training steps by default), not the number of training steps: [method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# (row 8); [`coda_edu.method.schedules.unsupervised_weight`](../coda_edu/method/schedules.py). The
# other curves' formulas follow section 2.

# %% tags=["parameters"]
quick: bool = False
device: str = "auto"
seed: int = 0
solutions: bool = False
dataset: str = "synthetic"    # synthetic, acdc, la or cadis (real data needs CODA_EDU_DATA_DIR)
labeled: int = 0              # labeled patients; 0 means the dataset's default below
method: str = "coda"          # supervised, cps, mean_teacher or coda
iterations: int = 0           # training steps; 0 means the dataset's workshop default
compare_baselines: bool = True
run_dir: str = ""             # a finished run folder is read, not trained again (empty: runs/04-..., named by the settings)
overrides: list = []          # extra config overrides, strings in the format of coda-edu train --set

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import Image, display

from coda_course import exercises
from coda_course.widgets import curve_explorer
from coda_edu.config import load_config, preset_path
from coda_edu.evaluate import format_table
from coda_edu.experiment import describe, run_name, train_or_read, with_method
from coda_edu.presets import notebook_quick
from coda_edu.registry import DATASETS
from coda_edu.run_folder import RunFolder
from coda_edu.viz.figures import plot_class_scores

# Workshop-size settings (minutes on a 2-core CPU): a real dataset's "cpu" preset in configs/, whole (it is
# sized for a CPU slot: ACDC about 10 minutes); the synthetic defaults at most WORKSHOP_STEPS steps;
# quick=True shrinks either to the quick size (coda_edu/presets/quick.yaml: the steps of this notebook
# and each dataset's own small settings).
WORKSHOP_STEPS = 600
preset = DATASETS.get(dataset).presets.get("cpu")  # an unknown dataset is a one-line error naming the choices
config_file = preset_path(preset) if preset else None
defaults = load_config(config_file, [f"data.name={dataset}"])
n_labeled = labeled or defaults.data.labeled_patients
steps = iterations or (defaults.train.iterations if preset else min(defaults.train.iterations, WORKSHOP_STEPS))
base = [f"data.name={dataset}", f"seed={seed}", f"train.device={device}", f"data.labeled_patients={n_labeled}",
        "train.log_every=10"]
if steps != defaults.train.iterations:
    base += [f"train.iterations={steps}", f"train.val_every={max(steps // 6, 1)}"]
if quick:
    quick_size = notebook_quick("04_full_experiment")
    steps = quick_size.steps
    base += [f"train.iterations={steps}", f"train.val_every={max(steps // 6, 1)}", "train.log_every=5"]
    base += list(DATASETS.get(dataset).quick) + quick_size.overrides  # the dataset's own small settings
base += list(overrides)
cfg = load_config(config_file, base + [f"method.name={method}"])
# the default folder is named by the settings: running the notebook again reads the run it trained
out = Path(run_dir) if run_dir else Path("runs") / run_name("04", cfg)
print(f"dataset {dataset}, {n_labeled} labeled, method {method}, {cfg.train.iterations} steps, config {config_file}, "
      f"run folder {out}")

# %% [markdown]
# ## 1. Train (or read a finished run)
#
# A run folder that already holds a finished run is read instead of trained again: the
# one this notebook trained the last time it ran with these settings, or one trained before
# the workshop (`run_dir`). A run stopped after a checkpoint is resumed. The line below
# says which, and where a read run's settings differ from the parameters above (the rest
# of the notebook then follows the run, not the parameters).

# %%
experiment = train_or_read(cfg, out, progress=True, log=lambda s: None)
print(describe(experiment))
cfg, data = experiment.cfg, experiment.data
method = cfg.method.name
records = experiment.evaluation["records"]
report_split = "test" if any(r["split"] == "test" for r in records) else "val"

# %% [markdown]
# ## 2. Learning curves
#
# Left: the supervised losses of A and B and (for semi-supervised methods) their
# unsupervised losses. Middle: the ramp-up weight λ(t), the share of pseudo-labels the
# filter keeps, and the learning-rate decay. Right: validation Dice of A, B and the
# ensemble; the best of these points selected the `best` checkpoint. The slider replays
# the run up to a step (it starts at the last one; the figure is redrawn in place).

# %% [markdown]
# *Formulas* ([method.md, one training
# step](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)):
# total loss L = L_sup^A + L_sup^B + λ(t)·[OECE(A ← B) + OECE(B ← A)], row 7,
# [`coda_edu.method.cps.CrossPseudoSupervision`](../coda_edu/method/cps.py);
# supervised loss, row 1,
# [`coda_edu.method.losses.supervised_loss`](../coda_edu/method/losses.py); OECE, row 6,
# [`coda_edu.method.losses.masked_cross_entropy`](../coda_edu/method/losses.py); ramp-up λ(t) =
# λ_max·exp(−5(1 − t/T)²), row 8,
# [`coda_edu.method.schedules.unsupervised_weight`](../coda_edu/method/schedules.py); learning
# rate η(t) = η₀(1 − t/T)^0.9, row 9,
# [`coda_edu.optim.poly_lr`](../coda_edu/optim.py); kept share, row 5,
# [`coda_edu.diagnostics.mask_coverage`](../coda_edu/diagnostics.py).

# %%
curves = curve_explorer(RunFolder(out).read_metrics(), title=f"{method} on {dataset}")
curves.show()

# %% [markdown]
# **Predict, then move the slider.** λ(t) ramps the unsupervised loss up from 0 over the
# ramp-up length T (the line below gives T for this run; T is *not* the number of training
# steps). At a quarter of the training steps, how large is λ(t) compared with its final
# value? `"a"` less than a quarter, `"b"` a quarter to three quarters, `"c"` more than three
# quarters. Work it out from the formula with this T, write your guess, move the slider to
# about a quarter of the steps, and run the check.

# %%
ramp_length = round(cfg.method.rampup * cfg.train.iterations)
print(f"T = method.rampup x train.iterations = {cfg.method.rampup} x {cfg.train.iterations} = {ramp_length} steps; "
      f"a quarter of the training steps is t = {cfg.train.iterations / 4:g}, so t / T = "
      f"{cfg.train.iterations / 4 / max(ramp_length, 1):.3f}; lambda_max = {cfg.method.lambda_max}")

# %%
my_prediction = ""  # "a", "b" or "c"

if solutions:
    my_prediction = exercises.predicted("rampup", curves)
exercises.check_prediction("rampup", my_prediction, curves)

# %% [markdown]
# ## 3. Results per class
#
# Dice on the evaluation split for the `best` (chosen on validation) and the `last`
# checkpoint. `eval.json` holds the same records with IoU, HD95 and ASD, and the
# protocol that produced them.

# %% [markdown]
# *Formula.* Dice = 2|P ∩ T| / (|P| + |T|) per class and case, averaged as in [evaluation.md,
# metrics](../docs/evaluation.md#metrics) (`coda_edu.metrics.dice_iou`); checkpoint selection:
# [evaluation.md, splits](../docs/evaluation.md#splits-and-checkpoint-selection).

# %%
tables = {}
for checkpoint in ("best", "last"):
    rows = [r for r in records if r["split"] == report_split and r["checkpoint"] == checkpoint]
    tables[checkpoint] = (rows[0]["step"] if rows else None, [(r["model"], r["class"], r["dice"]) for r in rows])
    if checkpoint == "last" and tables["last"] == tables["best"]:
        print(f"checkpoint 'last' is checkpoint 'best' here (both from step {tables['best'][0]}): the same table")
        continue
    print(format_table(rows, data.class_names, "dice",
                       title=f"{report_split} Dice, checkpoint '{checkpoint}' (step {tables[checkpoint][0]})"))
    print()
protocol = experiment.evaluation["protocol"]
print("checkpoint rule:", protocol["checkpoint_rule"])
print("distance units:", protocol["units"]["hd95"])

# %% [markdown]
# ## 4. What the segmentations look like

# %%
display(Image(filename=str(out / "figures" / "overlay.png")))

# %% [markdown]
# ## 5. Against the baselines
#
# The same data, steps, seed and schedule, with `method.name` changed. (Set
# `compare_baselines=False` to skip this part.)

# %%
summary = {method: {r["class"]: r["dice"] for r in records
                    if r["split"] == report_split and r["checkpoint"] == "best" and r["model"] == "ensemble"}}
if compare_baselines:
    for baseline in ("supervised", "cps"):
        if baseline == method:
            continue
        # the run's own settings with another method; a finished baseline folder is read, as above
        other = train_or_read(with_method(cfg, baseline), out.parent / f"{out.name}-{baseline}", data=data,
                              progress=True, log=lambda s: None)
        print(describe(other))
        summary[baseline] = {r["class"]: r["dice"] for r in other.evaluation["records"]
                             if r["split"] == report_split and r["checkpoint"] == "best" and r["model"] == "ensemble"}
classes = [c for c in summary[method] if c != "mean"] + ["mean"]
print(f"{report_split} Dice of the ensemble, best checkpoint")
print(f"{'method':<12}" + "".join(f"{c:>9}" for c in classes))
for name, values in summary.items():
    print(f"{name:<12}" + "".join(f"{values[c]:9.4f}" for c in classes))
display(plot_class_scores(classes, {name: [v[c] for c in classes] for name, v in summary.items()},
                          ylabel=f"{report_split} Dice (ensemble, best checkpoint)",
                          title=f"{report_split} Dice per class, one seed"))


# %% [markdown]
# With few steps and one seed, differences of a few points are within the noise: run
# `coda-edu notebooks sweep` (several seeds) and notebook 05 before drawing conclusions.
#
# ## Exercise: read a number out of `eval.json`
#
# Write `my_mean_dice(records, model)` returning the mean Dice of `model` ("A", "B" or
# "ensemble") on the **test** split at the **best** checkpoint (the record whose class
# is `"mean"`).

# %%
def my_mean_dice(records: list, model: str) -> float:
    # YOUR CODE HERE
    raise NotImplementedError


if solutions:
    my_mean_dice = exercises.solution("mean_dice")
exercises.check("mean_dice", my_mean_dice)

# %% [markdown]
# ## Recap
#
# - A run folder holds everything needed to trust a number: the resolved config, the
#   per-step metrics, both checkpoints, and `eval.json` with its protocol.
# - Checkpoints are chosen on validation data; the test split only reports.
# - Networks A and B differ only in initialisation; their ensemble is usually at
#   least as good as either.
# - Compare methods with the same data and budget, over several seeds (notebook 05).

# %% [markdown]
# ## References
#
# - T. Wang, Z. Huang, J. Wu, Y. Cai, Z. Li. *Semi-Supervised Medical Image Segmentation with
#   Co-Distribution Alignment.* Bioengineering 10(7):869, 2023. arXiv:2307.12630 — the method of
#   this series.
# - X. Chen, Y. Yuan, G. Zeng, J. Wang. *Semi-Supervised Semantic Segmentation with Cross Pseudo
#   Supervision.* CVPR 2021. arXiv:2106.01226 — two networks teaching each other.
# - A. Tarvainen, H. Valpola. *Mean teachers are better role models: Weight-averaged consistency
#   targets improve semi-supervised deep learning results.* NeurIPS 2017. arXiv:1703.01780 — the
#   Mean Teacher baseline.
# - K. Sohn, D. Berthelot, C.-L. Li, Z. Zhang, N. Carlini, E. D. Cubuk, A. Kurakin, H. Zhang, C.
#   Raffel. *FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence.*
#   NeurIPS 2020. arXiv:2001.07685 — the fixed confidence threshold.
#
# Words: [glossary](../docs/glossary.md). Formulas, their functions and config keys:
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision).
# Teaching the series: [instructor guide](../docs/teaching.md).
