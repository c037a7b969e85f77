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
# # 05 · Comparing runs: methods, labeled amounts and seeds
#
# One run is an anecdote. This notebook reads the run folders of many experiments
# (for example those written by `coda-edu notebooks sweep`), groups them by method and
# labeled amount, and reports the mean and the spread over seeds.
#
# **Learning objectives.** After this notebook you can
#
# 1. collect the results of many run folders into one table;
# 2. report a mean with its standard deviation over seeds, and judge whether a
#    difference between methods is larger than the seed-to-seed noise;
# 3. read a "Dice against labeled amount" figure per method and per class.
#
# If `runs_dir` holds fewer than two groups of runs, the notebook first trains a small
# demonstration grid (two methods × two labeled amounts × two seeds on the synthetic data).

# %% [markdown]
# ### Before you start
#
# **Prerequisites.** notebook 04 (run folders, `eval.json`); mean and standard deviation.
#
# **Time** to run all cells, per section, on a 2-core CPU with nothing else running
# (papermill's cell timings, 2026-11-26, written by `benchmarks/notebook_sections.py`; on a
# busy laptop expect up to a few times more; see
# [benchmarks.md](../docs/benchmarks.md#notebooks)). In a 90-minute
# workshop plan about 10 minutes for reading, the controls and the
# exercises ([instructor guide](../docs/teaching.md#schedule)).
#
# | section | quick (`quick=True`) | workshop (defaults) | GPU |
# |---|---|---|---|
# | set-up and 1. the runs (reads 04's runs here) | 2 s | 2 s | not measured |
# | 2.–3. mean ± std, per class (slider) | 1 s | < 1 s | not measured |
# | exercise, recap | < 1 s | < 1 s | not measured |
# | **whole notebook** (kernel start included) | **4 s** | **4 s** | not measured |
#
# **Words** in *italics* or Greek letters: [glossary](../docs/glossary.md). Every formula is
# followed by a link to its row in
# [method.md](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision)
# and to the function that computes it.
# References are at the end of the notebook.

# %% tags=["parameters"]
quick: bool = False
device: str = "auto"
seed: int = 0
solutions: bool = False
runs_dir: str = ""            # folder containing run folders (empty: runs/compare-demo)
split: str = "test"           # evaluation split to compare (falls back to val when absent)
checkpoint: str = "best"
model: str = "ensemble"
demo_iterations: int = 250    # steps per run of the demonstration grid

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import display

from coda_edu import exercises
from coda_edu.analysis import collect_runs, find_runs, summarize
from coda_edu.config import load_config
from coda_edu.presets import dataset_quick, notebook_quick
from coda_edu.train import train
from coda_edu.viz.figures import plot_comparison
from coda_edu.viz.widgets import comparison_explorer

root = Path(runs_dir) if runs_dir else Path("runs") / "compare-demo"
quick_size = notebook_quick("05_compare_runs") if quick else None  # the one place quick sizes live
steps = quick_size.steps if quick else demo_iterations
print(f"reading runs below {root.resolve()}")

# %% [markdown]
# ## 1. The runs (a demonstration grid is trained when there are too few)

# %%
rows = collect_runs(root)
groups = {(r["method"], r["labeled"]) for r in rows}
if len(groups) < 2:
    grid = [(m, n, s) for m in ("supervised", "coda") for n in (2, 4) for s in (seed, seed + 1)]
    print(f"only {len(groups)} group(s) found: training a demonstration grid of {len(grid)} runs, {steps} steps each")
    for m, n, s in grid:
        overrides = [f"method.name={m}", f"data.labeled_patients={n}", f"seed={s}", f"train.iterations={steps}",
                     f"train.val_every={max(steps // 3, 1)}", f"train.device={device}", "eval.distances=false"]
        if quick:
            overrides += list(dataset_quick("synthetic")) + quick_size.overrides
        out = root / f"demo-{m}-labeled{n}-seed{s}"
        if not (out / "eval.json").exists():
            train(load_config(None, overrides), out, progress=False, log=lambda s: None)
    rows = collect_runs(root)
runs = find_runs(root)
print(f"{len(runs)} runs, methods: {sorted({r['method'] for r in rows})}, labeled amounts: {sorted({r['labeled'] for r in rows})}")
if not any(r["split"] == split for r in rows):
    print(f"no run has the '{split}' split; using 'val' instead")
    split = "val"

# %% [markdown]
# ## 2. Mean ± standard deviation over seeds

# %%
summary = summarize(rows, ("method", "labeled"), "dice", split, checkpoint, model, "mean")
print(f"{split} mean Dice of model '{model}', checkpoint '{checkpoint}'")
print(f"{'method':<26}{'labeled':>8}{'mean':>9}{'std':>8}{'seeds':>7}")
for s in summary:
    std = "n/a" if s["std"] is None else f"{s['std']:.4f}"  # one seed measures no spread
    print(f"{s['method']:<26}{s['labeled']!s:>8}{s['mean']:9.4f}{std:>8}{s['n']:7d}")
display(plot_comparison(summary, ylabel=f"{split} mean Dice ({model})", title="Dice against labeled amount (± std over seeds)"))

# %% [markdown]
# A difference between two methods smaller than their standard deviations is not a
# finding. With more seeds the error bars shrink as 1/√n.
#
# ## 3. Per class, one labeled amount at a time
#
# The slider picks the labeled amount (it starts at the largest); bars are the mean over
# seeds, whiskers the standard deviation (none for a single seed).

# %% [markdown]
# *Formulas.* mean = Σ_s x_s / n and the sample standard deviation √(Σ_s (x_s − mean)² / (n − 1))
# over the n seeds (n/a for n = 1): [evaluation.md,
# aggregation](../docs/evaluation.md#aggregation), `coda_edu.analysis.summarize`; each x_s is one
# run's mean Dice ([evaluation.md, metrics](../docs/evaluation.md#metrics)).

# %%
per_class = comparison_explorer(rows, split, checkpoint, model)
per_class.show()

# %% [markdown]
# **Predict, then move the slider.** At the *smallest* labeled amount, is the difference
# between the two best methods (mean Dice) a `"finding"` (larger than the larger of their
# two standard deviations), `"noise"` (not larger), or can you not tell (`"cannot tell"`)?
# Write your guess, move the slider to the smallest amount, and run the check.

# %%
my_prediction = ""  # "finding", "noise" or "cannot tell"

if solutions:
    my_prediction = exercises.predicted("finding", per_class)
exercises.check_prediction("finding", my_prediction, per_class)


# %% [markdown]
# ## Exercise: mean and spread over seeds
#
# Write `my_mean_std(values)` returning `(mean, std)` of a list of per-seed scores,
# with the *sample* standard deviation (the one that is right for a handful of seeds).
# With a single seed there is no spread to measure: return `None` as the std, the
# convention of `coda_edu.analysis.summarize` and of the tables above (printed n/a).

# %%
def my_mean_std(values: list) -> tuple:
    # YOUR CODE HERE
    raise NotImplementedError


if solutions:
    my_mean_std = exercises.solution("mean_std")
exercises.check("mean_std", my_mean_std)

# %% [markdown]
# ## Recap
#
# - `coda_edu.analysis.collect_runs` turns run folders into rows; `summarize` groups them.
# - Report means with their spread over seeds, and compare methods at equal budgets.
# - Per-class views show where a method helps: Co-DA targets the minority classes.

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
#
# Words: [glossary](../docs/glossary.md). Formulas, their functions and config keys:
# [method.md](../docs/method.md#one-training-step-coda_edumethodalgorithmspy-crosspseudosupervision).
# Teaching the series: [instructor guide](../docs/teaching.md).
