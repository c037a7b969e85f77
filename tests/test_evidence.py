"""The numbers in docs/benchmarks*.md are the ones the committed run rows give.

benchmarks/evidence/ keeps the per-run rows that ``benchmarks/quality.py --rows`` saved for
the long sweeps (the ACDC preset on the GPU and on the CPU, the synthetic minority
regime) and the ACDC pseudo-label summaries. These tests recompute the
tables with quality.py's own functions and check each doc line carries the same numbers,
so an edited number, or a sweep rerun without updating the docs, fails here.
"""

import re
import subprocess
import sys

import pytest

from benchmarks import quality
from tests.conftest import REPO

EVIDENCE = REPO / "benchmarks" / "evidence"
BENCHMARKS_MD = "\n".join(p.read_text() for p in sorted((REPO / "docs").glob("benchmarks*.md")))  # summary + pages


def section(anchor: str) -> str:
    """The text of the benchmarks pages from ``<a id="anchor">`` to the next anchor."""
    start = BENCHMARKS_MD.index(f'<a id="{anchor}"></a>')
    end = BENCHMARKS_MD.find("<a id=", start + 1)
    return BENCHMARKS_MD[start : end if end > 0 else None]


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """The markdown tables of ``text``: (header cells, body rows), cells without ``**`` and spaces."""
    out, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append([cell.replace("**", "").strip() for cell in line.strip().strip("|").split(" | ")])
        elif block:
            out.append((block[0], block[2:]))
            block = []
    return out


def table_with(text: str, header: str) -> tuple[list[str], list[list[str]]]:
    """The one table with a header cell starting ``header``."""
    found = [t for t in tables(text) if any(cell.startswith(header) for cell in t[0])]
    assert len(found) == 1, f"expected one table with a header {header!r}, found {len(found)}"
    return found[0]


def row_of(table: tuple[list[str], list[list[str]]], starts: str) -> dict[str, str]:
    header, body = table
    found = [r for r in body if r[0].startswith(starts)]
    assert len(found) == 1, f"expected one row starting {starts!r}, found {len(found)}"
    return dict(zip(header, found[0]))


def minus(text: str) -> str:
    return text.replace("-", "−")


def rows(name: str, labels: dict[str, str], seeds: int | None = 5) -> list[dict]:
    """The saved rows of a sweep: exactly the methods of ``labels``, each with ``seeds`` runs (None: any)."""
    found = quality.read_rows(EVIDENCE / name)
    assert {r["method"] for r in found} == set(labels), f"benchmarks/evidence/{name}: other methods"
    if seeds is not None:
        assert all(sum(r["method"] == m for r in found) == seeds for m in labels), f"{name}: not {seeds} seeds each"
    return found


def check_dice(text: str, found: list[dict], labels: dict[str, str], header: str) -> None:
    """Per method, the mean ± std over seeds of each class's Dice is the doc's cell."""
    dice = table_with(text, header)
    for summary in quality.summarise(found):
        row = row_of(dice, labels[summary["method"]])
        for cls in ("RV", "MYO", "LV", "mean"):
            assert row[cls] == summary[f"{cls}_text"], (summary["method"], cls)
        if "n" in row:
            assert row["n"] == str(summary["seeds"])


def check_paired(text: str, found: list[dict], baseline: str, rows_named: dict[str, str]) -> None:
    """(method − baseline), paired by seed: the doc's cells of the "paired by seed" table."""
    paired = table_with(text, "paired by seed")
    for delta in quality.paired_deltas(found, baseline):
        method = delta["method"].rsplit(" - ", 1)[0]
        if method in rows_named:
            row = row_of(paired, rows_named[method])
            for cls in ("RV", "MYO", "LV", "mean"):
                assert row[cls] == minus(delta[f"{cls}_text"]), (delta["method"], cls)


def check_pair(table: tuple[list[str], list[list[str]]], found: list[dict], labels: dict[str, str], gap: str) -> None:
    """Per method, the doc's pair cells: mean |A − B| (column ``gap``) and the seeds whose ensemble is ok."""
    for expected in quality.pair_table(found):
        row = row_of(table, labels[expected["method"]])
        assert row[gap] == expected["gap"], expected["method"]
        assert row["ensemble ≥ better − 0.01"] == expected["ens_ok"].replace("/", " of "), expected["method"]


GPU_LABELS = {
    "supervised": "supervised",
    "cps": "CPS",
    "coda": "Co-DA",
    "filter only": "filter only",
    "alignment only": "alignment only",
}


def test_acdc_gpu_sweep_tables_are_the_saved_rows():
    found = rows("acdc_gpu_rows.jsonl", GPU_LABELS, seeds=None)  # alignment only: 4 seeds (the lease ended)
    text = section("acdc-5-seeds")
    check_dice(text, found, GPU_LABELS, "method (val")
    check_paired(
        text,
        found,
        "cps",
        {"coda": "Co-DA − CPS", "filter only": "filter only − CPS", "alignment only": "alignment only − CPS"},
    )
    check_paired(text, found, "supervised", {"coda": "Co-DA − supervised", "cps": "CPS − supervised"})
    pair = table_with(text, "ensemble ≥ better")
    check_pair(pair, found, GPU_LABELS, "mean \\|A − B\\|")
    for expected in quality.pair_table(found):
        row = row_of(pair, GPU_LABELS[expected["method"]])
        assert (row["A"], row["B"], row["ensemble"]) == (expected["A"], expected["B"], expected["ensemble"])


SYNTHETIC_LABELS = {
    "supervised": "supervised",
    "cps": "CPS",
    "coda, predictions": "Co-DA, `predictions`",
    "coda, hard counts": "Co-DA, `hard_counts`",
    "coda, argmax share": "Co-DA, `argmax_share`",
    "coda, labels": "Co-DA, `labels`",
    "filter only": "filter only",
    "alignment only": "alignment only",
}


def test_synthetic_minority_tables_are_the_saved_rows():
    found = rows("synthetic_minority_rows.jsonl", SYNTHETIC_LABELS)
    text = section("minority-regime")
    dice = table_with(text, "RV (test)")
    vs_cps = {d["method"].rsplit(" - ", 1)[0]: d for d in quality.paired_deltas(found, "cps")}
    vs_sup = {d["method"].rsplit(" - ", 1)[0]: d for d in quality.paired_deltas(found, "supervised")}
    pairs = {p["method"]: p for p in quality.pair_table(found)}
    for summary in quality.summarise(found):
        method = summary["method"]
        row = row_of(dice, SYNTHETIC_LABELS[method])
        assert (row["RV (test)"], row["mean (test)"]) == (summary["RV_text"], summary["mean_text"]), method
        if method != "cps":
            assert row["RV − CPS, paired"] == minus(vs_cps[method]["RV_text"]), method
        if method != "supervised":
            assert row["RV − supervised, paired"] == minus(vs_sup[method]["RV_text"]), method
        assert row["validation mean"] == pairs[method]["ensemble"], method
    bias = table_with(text, "A: ratio")
    for expected in quality.bias_table(found, "RV"):
        row = row_of(bias, SYNTHETIC_LABELS[expected["method"]])
        for net in ("A", "B"):
            ratio, under = re.search(r"ratio (\S+ ± \S+), under in (\d+/\d+)", expected[net]).groups()
            assert row[f"{net}: ratio (seeds under)"] == f"{ratio} ({under})", (expected["method"], net)


CPU_LABELS = {
    "coda": "Co-DA, `predictions`",
    "coda, argmax share": "Co-DA, `argmax_share`",
    "coda, hard counts": "Co-DA, `hard_counts`",
    "coda, labels": "Co-DA, `labels`",
    "alignment only": "alignment only",
}


def test_acdc_cpu_readings_tables_are_the_saved_rows():
    found = rows("acdc_cpu_rows.jsonl", CPU_LABELS)
    text = section("acdc-readings")
    check_dice(text, found, CPU_LABELS, "method (val")
    check_paired(
        text,
        found,
        "coda",
        {
            "coda, argmax share": "`argmax_share` − `predictions`",
            "coda, hard counts": "`hard_counts` − `predictions`",
            "coda, labels": "`labels` − `predictions`",
            "alignment only": "alignment only − Co-DA",
        },
    )
    check_pair(table_with(text, "method (val"), found, CPU_LABELS, "\\|A − B\\|")


def check_delta(paired, found: list[dict], method: str, baseline: str, label: str, bootstrap: str | None = None):
    """The doc's row ``label``: (method − baseline) paired by seed with the seeds ahead, and, when
    ``bootstrap`` names a row, the 95 % paired bootstrap interval over patients."""
    both = [r for r in found if r["method"] in (method, baseline)]
    delta = next(d for d in quality.paired_deltas(both, baseline) if d["method"] == f"{method} - {baseline}")
    dice = {(r["method"], r["seed"]): r["dice"] for r in both}
    seeds = sorted(s for m, s in dice if m == method and (baseline, s) in dice)
    row = row_of(paired, label)
    for cls in ("RV", "MYO", "LV", "mean"):
        ahead = sum(dice[method, s][cls] > dice[baseline, s][cls] for s in seeds)
        assert row[cls] == f"{minus(delta[f'{cls}_text'])} ({ahead} of {len(seeds)})", (label, cls)
    if bootstrap:
        interval, row = quality.paired_bootstrap(both, method, baseline), row_of(paired, bootstrap)
        for cls in ("RV", "MYO", "LV", "mean"):
            _, low, high = interval[cls]
            assert row[cls] == minus(f"[{low:+.3f}, {high:+.3f}]"), (bootstrap, cls)


AVX512_LABELS = {"supervised": "supervised", "cps": "CPS + KS", "coda": "Co-DA + KS"}


def test_acdc_preset_pairs_on_one_cpu_kind_are_the_saved_rows():
    """docs/benchmarks-acdc.md#acdc-other-cpu-pairs: the dice, the paired differences with the seeds
    ahead, and the bootstrap intervals over patients, from the 15 runs' rows (with their cases)."""
    found = rows("acdc_cpu_avx512_rows.jsonl", AVX512_LABELS)
    assert {r["cpu"] for r in found} == {"AMD EPYC (family 25, model 17), AVX512"}  # one kind of CPU
    text = section("acdc-other-cpu-pairs")
    check_dice(text, found, AVX512_LABELS, "method (val")
    paired = table_with(text, "paired by seed")
    for baseline, name in (("cps", "CPS"), ("supervised", "supervised")):
        bootstrap = f"the same, 95 % bootstrap over patients (Co-DA − {name})"
        check_delta(paired, found, "coda", baseline, f"Co-DA + KS − {AVX512_LABELS[baseline]}", bootstrap)
    check_delta(paired, found, "cps", "supervised", "CPS + KS − supervised")


def test_acdc_bf16_runs_on_the_avx512_cpu_are_the_saved_rows():
    """docs/benchmarks-acdc.md#acdc-cpu-bf16: bf16 autocast with 2,800 steps against the preset's fp32
    2,500 steps, every method on the same AVX-512 CPU, from the 30 runs' rows (with their cases)."""
    bf16 = rows("acdc_cpu_bf16_rows.jsonl", AVX512_LABELS)
    fp32 = [dict(r, method=f"{r['method']} fp32") for r in rows("acdc_cpu_avx512_rows.jsonl", AVX512_LABELS)]
    assert {r["cpu"] for r in bf16 + fp32} == {"AMD EPYC (family 25, model 17), AVX512"}  # one kind of CPU
    assert all({"train.precision=bf16", "train.iterations=2800"} <= set(r["overrides"]) for r in bf16)
    text = section("acdc-cpu-bf16")
    check_dice(text, bf16, AVX512_LABELS, "method (val")
    paired, found = table_with(text, "paired by seed"), bf16 + fp32
    for method, label in AVX512_LABELS.items():  # the switch's own row per method (the bootstrap: Co-DA's)
        interval = "… 95 % bootstrap (bf16" if method == "coda" else None
        check_delta(paired, found, method, f"{method} fp32", f"{label}, bf16 2,800 − fp32 2,500", interval)
    check_delta(paired, found, "coda", "cps", "Co-DA + KS − CPS + KS, both bf16", "… 95 % bootstrap (Co-DA − CPS")
    check_delta(
        paired, found, "coda", "supervised", "Co-DA + KS − supervised, both bf16", "… 95 % bootstrap (Co-DA − sup"
    )
    check_delta(paired, found, "cps", "supervised", "CPS + KS − supervised, both bf16")


def test_acdc_bf16_channels_last_3200_steps_are_the_saved_rows():
    """docs/benchmarks-acdc.md#acdc-cpu-bf16-3200: bf16, channels-last and 3,200 steps (the time the faster
    evaluation and memory format free), every method on the same AVX-512 CPU, paired with each other and
    with the bf16 2,800-step runs, from the 30 runs' rows (with their cases); every run within 10 minutes."""
    recipe = rows("acdc_cpu_bf16_3200_rows.jsonl", AVX512_LABELS)
    earlier = [dict(r, method=f"{r['method']} 2800") for r in rows("acdc_cpu_bf16_rows.jsonl", AVX512_LABELS)]
    assert {r["cpu"] for r in recipe + earlier} == {"AMD EPYC (family 25, model 17), AVX512"}  # one kind of CPU
    switches = {"train.precision=bf16", "train.iterations=3200", "train.channels_last=true", "train.threads=2"}
    assert all(switches <= set(r["overrides"]) for r in recipe)
    assert all(r["seconds"] <= 600 for r in recipe)  # the whole run, evaluation included
    text = section("acdc-cpu-bf16-3200")
    check_dice(text, recipe, AVX512_LABELS, "method (val")
    paired, found = table_with(text, "paired by seed"), recipe + earlier
    check_delta(paired, found, "coda", "cps", "Co-DA + KS − CPS + KS, 3,200 steps", "… 95 % bootstrap (Co-DA − CPS)")
    check_delta(
        paired, found, "coda", "supervised", "Co-DA + KS − supervised, 3,200 steps", "… 95 % bootstrap (Co-DA − sup"
    )
    check_delta(paired, found, "cps", "supervised", "CPS + KS − supervised, 3,200 steps")
    for method, label in AVX512_LABELS.items():
        interval = "… 95 % bootstrap (3,200 − 2,800)" if method == "coda" else None
        check_delta(paired, found, method, f"{method} 2800", f"{label}, 3,200 − 2,800 steps", interval)


PARTS_LABELS = {
    "coda, marginal momentum 0.9": "Co-DA + KS, marginal momentum 0.9",
    "coda, filter only": "Co-DA + KS, filter only",
    "coda, background-only filter": "Co-DA + KS, background-only filter",
    "coda, organ-only filter": "Co-DA + KS, organ-only filter",
    "coda, ramp-up 0.2": "Co-DA + KS, λ ramp-up 0.2",
    "coda, feature dropout, clean view": "Co-DA + KS, feature dropout 0.5, clean view",
    "coda, feature dropout, mixed view": "Co-DA + KS, feature dropout 0.5, mixed view",
}


def test_coda_parts_on_the_bf16_recipe_are_the_saved_rows():
    """docs/benchmarks-acdc.md#acdc-cpu-coda-parts: Co-DA's own parts (a faster marginal EMA, the filter
    without the alignment, the filter on the background or on the organs only, a faster λ ramp-up) and the
    feature perturbation (both views) on the bf16 recipe, paired with its Co-DA, CPS and supervised runs."""
    parts = rows("acdc_cpu_bf16_parts_rows.jsonl", PARTS_LABELS)
    bf16 = rows("acdc_cpu_bf16_rows.jsonl", AVX512_LABELS)
    assert {r["cpu"] for r in parts + bf16} == {"AMD EPYC (family 25, model 17), AVX512"}  # one kind of CPU
    assert all({"train.precision=bf16", "train.iterations=2800"} <= set(r["overrides"]) for r in parts)
    switch = {
        "coda, marginal momentum 0.9": "method.marginal_momentum=0.9",
        "coda, filter only": "method.alignment=none",
        "coda, background-only filter": "method.filter_classes=majority",
        "coda, organ-only filter": "method.filter_classes=minority",
        "coda, ramp-up 0.2": "method.rampup=0.2",
        "coda, feature dropout, clean view": "method.feature_view=clean",
        "coda, feature dropout, mixed view": "method.feature_view=perturbed",
    }
    assert all(switch[r["method"]] in r["overrides"] for r in parts)
    assert all(("method.feature_dropout=0.5" in r["overrides"]) == ("feature" in r["method"]) for r in parts)
    text = section("acdc-cpu-coda-parts")
    check_dice(text, parts, PARTS_LABELS, "method (val")
    paired, found = table_with(text, "paired by seed"), parts + bf16
    for method, label in PARTS_LABELS.items():
        check_delta(paired, found, method, "coda", f"{label} − Co-DA + KS", f"… 95 % bootstrap ({label} − Co-DA)")
        check_delta(paired, found, method, "cps", f"{label} − CPS + KS", f"… 95 % bootstrap ({label} − CPS)")
        check_delta(paired, found, method, "supervised", f"{label} − supervised")


@pytest.mark.parametrize(
    "summaries, anchor",
    [
        ("acdc_cpu_pseudo_labels.json", "acdc-pseudo-labels"),
        ("acdc_cpu_bf16_pseudo_labels.json", "acdc-cpu-coda-parts"),
    ],
)
def test_acdc_pseudo_label_table_is_the_saved_summaries(summaries, anchor):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "pseudo_labels.py"), "--load", str(EVIDENCE / summaries)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = section(anchor)
    assert done.stdout.strip() in text


def test_paired_bootstrap_resamples_patients_and_keeps_seeds_paired():
    def row(method, seed, shift):
        cases = {}
        for p, base in (("patient001", 0.6), ("patient002", 0.7), ("patient003", 0.8)):
            for frame in ("frame01", "frame02"):
                value = base + shift.get(p, 0.0)
                cases[f"{p}_{frame}"] = {"RV": value, "mean": value}
        return {"method": method, "seed": seed, "cases": cases}

    same = [row("sup", s, {}) for s in (0, 1)] + [
        row("coda", s, {p: 0.1 for p in ("patient001", "patient002", "patient003")}) for s in (0, 1)
    ]
    mean, low, high = quality.paired_bootstrap(same, "coda", "sup", samples=500)["RV"]
    assert mean == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    # a gain on one patient only: the mean is a third of it and the interval spans 0 .. the gain
    one = [row("sup", 0, {}), row("coda", 0, {"patient003": 0.3})]
    mean, low, high = quality.paired_bootstrap(one, "coda", "sup", samples=2000)["mean"]
    assert mean == pytest.approx(0.1) and low == pytest.approx(0.0) and high == pytest.approx(0.3)
    assert quality.paired_bootstrap([{"method": "coda", "seed": 0}], "coda", "sup") == {}


def test_the_preset_timings_on_the_avx2_cpu_are_the_saved_rows():
    """docs/benchmarks-acdc.md#acdc-avx2-again: the preset's whole runs on the AVX2 CPU after the faster
    evaluation, their parts, how many fit 10 minutes, and the runs that equal the course pack's."""
    import json

    found = [json.loads(line) for line in (EVIDENCE / "acdc_cpu_avx2_timing_rows.jsonl").read_text().splitlines()]
    assert {r["cpu"] for r in found} == {"AMD EPYC (family 25, model 1), AVX2"}
    text = section("acdc-avx2-again")
    table = {row[0]: row[1:] for row in tables(text)[0][1]}

    def span(values, digits=0):
        low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
        return low if low == high else f"{low}–{high}"

    coda = sorted((r for r in found if r["method"] == "coda"), key=lambda r: r["whole_run_s"])
    assert [r["seed"] for r in sorted(coda, key=lambda r: r["seed"])] == [0, 1, 2, 3, 4]
    for label, runs in (("Co-DA seeds 0–4", coda),) + tuple(
        (f"{name} seed 0", [r for r in found if r["method"] == method])
        for name, method in (("CPS", "cps"), ("supervised", "supervised"))
    ):
        whole, steps, val, final, start = table[label]
        if len(runs) > 1:
            assert whole == ", ".join(f"{r['whole_run_s']:.0f}" for r in runs) + " s"
        else:
            assert whole == f"{runs[0]['whole_run_s']:.0f} s"
        per_step = [r["train_steps_s"] / 2500 for r in runs]
        assert steps == f"{span([r['train_steps_s'] for r in runs])} s ({span(per_step, 3)} s/step)"
        assert val == f"{span([r['validations_s'] for r in runs])} s"
        assert final == f"{span([r['final_eval_s'] for r in runs], 1)} s"
        assert start == f"{span([r['start_s'] for r in runs])} s"
    fits = [r for r in coda if r["whole_run_s"] <= 600]
    assert f"in {len(fits)} of 5 Co-DA runs** ({span([r['whole_run_s'] for r in fits])} s)" in text
    assert f"from {span([r['pack_eval_s'] for r in coda])} s to" in text
    same = sorted(r["seed"] for r in found if r["max_abs_dice_diff_vs_pack"] == 0.0 and r["method"] == "coda")
    assert same == [r["seed"] for r in found if r["method"] == "coda" and r["pack_threads"] == 2] == [0, 2, 3, 4]
    assert all(r["max_abs_dice_diff_vs_pack"] == 0.0 for r in found if r["method"] != "coda")
    (seed1,) = [r for r in found if r["method"] == "coda" and r["pack_threads"] == 1]
    new, old = seed1["best_ensemble_mean_dice"], seed1["pack_best_ensemble_mean_dice"]
    assert f"(best ensemble mean {new:.3f} against the packed {old:.3f})" in text


def test_the_readme_and_notebook_04_quote_the_acdc_benchmarks_pages():
    """Every mean ± spread and bootstrap interval in the README's ACDC preset rows and in notebook 04's
    real-data paragraph is one the tested benchmarks pages carry (so they cannot drift from the evidence)."""
    readme = (REPO / "README.md").read_text()
    start = readme.index("| `configs/acdc_cpu.yaml` (the CPU preset:")
    rows = readme[start : readme.index("| `configs/acdc_cpu_plain.yaml`", start)]
    notebook = (REPO / "notebooks" / "04_full_experiment.py").read_text()
    real_data = notebook[notebook.index("# **Real data**") : notebook.index("# **Words**")]
    for text, least in ((rows, 15), (real_data, 6)):
        quoted = re.findall(r"[+−]?\d\.\d{3} ± \d\.\d{3}", text)
        quoted += re.findall(r"\[[+−]\d\.\d{3}, [+−]\d\.\d{3}\]", text)
        assert len(quoted) >= least
        assert [q for q in quoted if q not in BENCHMARKS_MD] == []
