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
# # 05 · Comparing runs: methods, classes and seeds
#
# One run is an anecdote. Whether a method helps shows over several seeds, and where it
# helps shows per class. Five seeds of six methods take hours on a laptop, so this notebook
# compares runs that were trained once and ship with coda-edu, the **course pack**
# (`course_pack/`, rebuilt by `coda-edu course pack`): by default the synthetic minority
# regime, *pre-run, 5 seeds*. When you have trained runs of your own (notebook 04, or
# `coda-edu notebooks sweep`), they are added beside it as *your runs*.
#
# **Learning objectives.** After this notebook you can
#
# 1. collect the results of many run folders into one table;
# 2. report a mean with its standard deviation over seeds, and judge whether a
#    difference between methods is larger than the seed-to-seed noise, paired by seed;
# 3. read per-class results: which class a method helps, and which it does not.

# %% [markdown]
# ### Before you start
#
# **Prerequisites.** notebook 04 (run folders, `eval.json`); mean and standard deviation.
#
# **Time** to run all cells, per section, on a 2-core CPU (papermill's cell timings, written
# by `benchmarks/notebook_sections.py`): measured 2026-12-05 with other jobs on the CPU (load
# average 2–5, one torch thread), so an upper bound; this notebook trains nothing, both sizes
# read the same pre-run runs. See [benchmarks-notebooks.md](../docs/benchmarks-notebooks.md#notebooks). In a
# 90-minute workshop plan about 10 minutes for reading, the controls and the
# exercises ([instructor guide](../docs/teaching.md#schedule)).
#
# | section | quick (`quick=True`) | workshop (defaults) | GPU |
# |---|---|---|---|
# | set-up and 1. the runs (pre-run and yours) | 2 s | 2 s | not measured |
# | 2.–4. mean ± std, paired differences, per class (menus) | 5 s | 5 s | not measured |
# | exercise, recap | < 1 s | < 1 s | not measured |
# | **whole notebook** (kernel start included) | **11 s** | **11 s** | not measured |
#
# **Words** in *italics* or Greek letters: [glossary](../docs/glossary.md). Every formula is
# followed by a link to its row in
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision)
# and to the function that computes it.
# References are at the end of the notebook.

# %% tags=["parameters"]
quick: bool = False           # 05 trains nothing: both sizes read the same pre-run runs
device: str = "auto"
seed: int = 0
solutions: bool = False
pack_group: str = "minority"  # the pre-run runs compared by default: a group of course_pack/groups.yaml
runs_dir: str = ""            # your runs: a folder holding run folders (04's, a sweep's); empty: runs/ if it has some
split: str = "test"           # evaluation split of your runs (falls back to val when absent)
checkpoint: str = "best"
model: str = "ensemble"

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import display

from coda_course import exercises
from coda_course.analysis import collect_runs, paired, std_text, summarize
from coda_course.course_pack import CoursePack, default_coda_variant
from coda_course.widgets import comparison_explorer
from coda_edu.viz.figures import plot_class_scores, plot_comparison

pack = CoursePack()  # course_pack/ of the repository, checksums verified (a damaged pack stops here, in one line)
info = pack.info(pack_group)
packed = pack.runs(pack_group)
mine_root = Path(runs_dir) if runs_dir else Path("runs")
print(f"pre-run: course pack group '{pack_group}', {info['title']}")
print(f"your runs: below {mine_root.resolve()}")

# %% [markdown]
# ## 1. The runs: pre-run and yours

# %%
pre_rows = [row for run in packed for row in run.rows()]
pre_split = "test" if any(r["split"] == "test" for r in pre_rows) else "val"
methods = list(dict.fromkeys(run.variant for run in packed))
seeds = sorted({run.seed for run in packed})
classes = [c for c in packed[0].class_names[1:]]
minority = info["minority_class"] or classes[0]
print(f"pre-run, {len(seeds)} seeds ({', '.join(map(str, seeds))}): {len(packed)} runs, methods: {', '.join(methods)}; "
      f"reported on the {pre_split} split")
my_rows = collect_runs(mine_root)
if my_rows and not any(r["split"] == split for r in my_rows):
    print(f"none of your runs has the '{split}' split; using 'val' instead")
    split = "val"
mine = {}  # one source per labeled amount: runs at different amounts are different experiments
for r in my_rows:
    mine.setdefault(r["labeled"], []).append(r)
for labeled, rows in mine.items():
    runs = {r["run"] for r in rows}
    print(f"your runs, {labeled} labeled: {len(runs)} run{'s' * (len(runs) != 1)}, "
          f"methods: {sorted({r['method'] for r in rows})}, "
          f"seeds: {sorted({r['seed'] for r in rows})}")
if not mine:
    print(f"your runs: none found below {mine_root} (run notebook 04 or 'coda-edu notebooks sweep', or set runs_dir)")


# %% [markdown]
# ## 2. Mean ± standard deviation over seeds, per class
#
# Each method's Dice per class, averaged over the seeds; the ± is the sample standard
# deviation over the seeds, and there is none for a single seed (printed n/a, and no
# error bar in the figures).

# %% [markdown]
# *Formulas.* mean = Σ_s x_s / n and the sample standard deviation √(Σ_s (x_s − mean)² / (n − 1))
# over the n seeds (n/a for n = 1): [evaluation.md,
# aggregation](../docs/evaluation.md#aggregation), `coda_course.analysis.summarize`; each x_s is one
# run's Dice ([evaluation.md, metrics](../docs/evaluation.md#metrics)).

# %%
def class_table(rows, split, title):
    """Mean ± std over seeds per method and class (std n/a for one seed); returns the summaries."""
    out = {c: {s["method"]: s for s in summarize(rows, ("method",), "dice", split, checkpoint, model, c)}
           for c in classes + ["mean"]}
    print(f"{title}: {split} Dice of the {model}, checkpoint '{checkpoint}', mean ± std over seeds (n seeds)")
    print(f"{'method':<22}" + "".join(f"{c:>17}" for c in classes + ["mean"]) + f"{'n':>4}")
    for m in dict.fromkeys(r["method"] for r in rows):
        cells = []
        for c in classes + ["mean"]:
            s = out[c].get(m)
            cells.append("—" if s is None else f"{s['mean']:.3f} ± {std_text(s['std'])}")
        print(f"{m:<22}" + "".join(f"{x:>17}" for x in cells) + f"{out['mean'][m]['n'] if m in out['mean'] else 0:>4}")
    return out


pre_table = class_table(pre_rows, pre_split, f"pre-run, {len(seeds)} seeds")
display(plot_class_scores(classes + ["mean"],
                          {m: [pre_table[c][m]["mean"] for c in classes + ["mean"]] for m in methods},
                          errors={m: [pre_table[c][m]["std"] for c in classes + ["mean"]] for m in methods},
                          ylabel=f"{pre_split} Dice ({model})",
                          title=f"pre-run, {len(seeds)} seeds: mean ± std over seeds"))
for labeled, rows in mine.items():
    print()
    mine_table = class_table(rows, split, f"your runs, {labeled} labeled")
    mine_methods = list(dict.fromkeys(r["method"] for r in rows))
    display(plot_class_scores(classes + ["mean"],
                              {m: [mine_table[c][m]["mean"] if m in mine_table[c] else float("nan")
                                   for c in classes + ["mean"]] for m in mine_methods},
                              errors={m: [mine_table[c][m]["std"] if m in mine_table[c] else None
                                          for c in classes + ["mean"]] for m in mine_methods},
                              ylabel=f"{split} Dice ({model})",
                              title=f"your runs, {labeled} labeled: mean, ± std where there are two seeds or more"))

# %% [markdown]
# ## 3. Differences paired by seed
#
# Every method of the pack was trained with the same seeds, and a seed fixes the data and the
# initial networks: method − baseline *per seed* removes what the seeds share, so the paired
# differences vary less than the methods' own Dice do. A difference whose mean is larger than
# its standard deviation over seeds is a finding; a smaller one is within the noise.

# %% [markdown]
# *Formula.* d_s = x_s(method) − x_s(baseline) per seed s, then the mean and the sample
# standard deviation of the d_s as above: `coda_course.analysis.paired`;
# [evaluation.md, aggregation](../docs/evaluation.md#aggregation).

# %%
baseline = next((m for m in methods if m.lower() in ("cps",)), methods[0])
default_coda = default_coda_variant(packed)  # the Co-DA that 04 trains: the default reading and filter
print(f"pre-run, {len(seeds)} seeds: {pre_split} Dice, method − {baseline}, paired by seed: mean ± std (seeds ahead)")
print(f"{'method':<22}" + "".join(f"{c:>22}" for c in classes + ["mean"]))
diffs = {}
for m in methods:
    if m == baseline:
        continue
    cells = []
    for c in classes + ["mean"]:
        p = paired(pre_rows, m, baseline, c, pre_split, checkpoint, model)
        diffs[(m, c)] = p
        cells.append(f"{p['mean']:+.3f} ± {std_text(p['std'])} ({p['positive']}/{p['n']})")
    print(f"{m:<22}" + "".join(f"{x:>22}" for x in cells))


def verdict(p):
    if p["std"] is None:
        return "from a single seed: cannot tell"
    return "a finding" if abs(p["mean"]) > p["std"] else "within the noise"


best = max((m for m in methods if m != baseline), key=lambda m: diffs[(m, minority)]["mean"])
p_best = diffs[(best, minority)]
print(f"what the pre-run runs show: on the minority class {minority}, {best} gains most over {baseline}: "
      f"{p_best['mean']:+.3f} ± {std_text(p_best['std'])} over {p_best['n']} seeds ({p_best['positive']} ahead), "
      f"{verdict(p_best)}")
if default_coda and default_coda != best:
    p_def = diffs[(default_coda, minority)]
    print(f"the Co-DA that notebook 04 trains ({default_coda}, the default reading): {p_def['mean']:+.3f} ± "
          f"{std_text(p_def['std'])} on {minority} over {baseline}, {verdict(p_def)}")

# %% [markdown]
# ## 4. One class, one baseline at a time
#
# The menus choose the runs (pre-run, or yours per labeled amount), the class and the
# baseline. Left: each seed's Dice (dots) and the mean ± std (◆); right: each method minus
# the baseline, seed by seed. A method with a single seed gets no ± bar: one run measures no
# spread.

# %%
sources = {f"pre-run, {len(seeds)} seeds": {"rows": pre_rows, "split": pre_split, "checkpoint": checkpoint,
                                              "model": model}}
for labeled, rows in mine.items():
    sources[f"your runs, {labeled} labeled"] = {"rows": rows, "split": split, "checkpoint": checkpoint, "model": model}
supervised = next((m for m in methods if m == "supervised"), baseline)
question = {"source": next(iter(sources)), "cls": minority, "method": default_coda or best, "baseline": supervised}
per_class = comparison_explorer(sources, cls=minority, baseline=baseline, question=question)
per_class.show()

# %% [markdown]
# **Predict, then use the menus.** Notebook 04 trains Co-DA with the default alignment reading.
# In the pre-run runs, on the minority class, is that Co-DA's difference to *supervised*
# training a `"finding"` (its mean paired difference larger than the paired standard
# deviation), `"noise"` (not larger), or can you not tell (`"cannot tell"`)? Write your
# guess, set the menus (the class, "paired with" supervised) and run the check.

# %%
my_prediction = ""  # "finding", "noise" or "cannot tell"

if solutions:
    my_prediction = exercises.predicted("finding", per_class)
exercises.check_prediction("finding", my_prediction, per_class)

# %% [markdown]
# With your own runs and several labeled amounts (a sweep), Dice against the labeled amount
# per method (the error bars are the std over seeds, drawn only where there are two seeds
# or more):

# %%
amounts = sorted(mine)
if len(amounts) >= 2:
    summary = summarize(my_rows, ("method", "labeled"), "dice", split, checkpoint, model, "mean")
    display(plot_comparison(summary, ylabel=f"{split} mean Dice ({model})", title="your runs: Dice against labeled amount"))
else:
    print(f"your runs cover {len(amounts)} labeled amount(s): no curve against the labeled amount "
          f"(a sweep: coda-edu notebooks sweep --grid labeled=2,4 --grid seed=0,1)")


# %% [markdown]
# ## Exercise: mean and spread over seeds
#
# Write `my_mean_std(values)` returning `(mean, std)` of a list of per-seed scores,
# with the *sample* standard deviation (the one that is right for a handful of seeds).
# With a single seed there is no spread to measure: return `None` as the std, the
# convention of `coda_course.analysis.summarize` and of the tables above (printed n/a).

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
# - `coda_course.analysis.collect_runs` turns run folders into rows; `summarize` groups them;
#   the course pack (`coda_course.course_pack`) gives pre-run runs in the same form.
# - Report means with their spread over seeds (none for one seed), compare methods at equal
#   budgets, and pair the differences by seed.
# - Per-class views show where a method helps: the lines of section 3 say, for the pre-run
#   runs, which method gains on the minority class and whether the default Co-DA does.

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
# [method.md](../docs/method.md#one-training-step-coda_edumethodcpspy-crosspseudosupervision).
# Teaching the series: [instructor guide](../docs/teaching.md).
