"""Per-section run times of executed notebooks, from papermill's cell timings.

    python benchmarks/notebook_sections.py --quick DIR_Q [--workshop DIR_W] [--write]

DIR_Q / DIR_W hold notebooks executed by ``coda-edu notebooks run`` (papermill records each
cell's duration and the whole run's, kernel start included). The sections are the rows of
the "Time" table in each notebook's header: a row named "set-up and 1. ..." starts at the
first cell, "N. ..." or "N.–M. ..." at the heading "## N.", "exercise..." at the first
"## Exercise" heading; a row ends where the next one starts. Prints one table per notebook;
``--write`` puts the measured seconds into the quick and workshop columns of the header
table in ``notebooks/NN_name.py`` (then run ``coda-edu notebooks sync``). Only measured
columns are replaced; the GPU column and the text around the table are left alone.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^# \| (?P<label>[^|]+?) \| (?P<quick>[^|]+?) \| (?P<workshop>[^|]+?) \| (?P<gpu>[^|]+?) \|$")


def header_rows(source: str) -> list[str]:
    """The section labels of the header's time table (whole-notebook row excluded)."""
    labels = []
    for line in source.splitlines():
        m = ROW.match(line)
        if m and m["label"] not in ("section", "---") and not m["label"].startswith("**whole"):
            labels.append(m["label"])
    return labels


def section_start(label: str, headings: list[tuple[int, str]]) -> int:
    """Index of the cell where the row ``label`` starts (``headings``: (cell index, a "## " line in it))."""
    if label.startswith("set-up"):
        return 0
    number = re.match(r"^(\d+)\.", label)
    for index, text in headings:
        if number and text.startswith(f"## {number[1]}."):
            return index
        if not number and label.startswith("exercise") and text.startswith("## Exercise"):
            return index
    raise SystemExit(f"no heading for the section {label!r}")


def section_seconds(executed: Path, labels: list[str]) -> tuple[list[float], float]:
    """Seconds per row (sum of its cells' papermill durations) and the whole run's duration."""
    nb = json.loads(executed.read_text())
    cells = nb["cells"]
    headings = [
        (i, line)
        for i, c in enumerate(cells)
        if c["cell_type"] == "markdown"
        for line in "".join(c["source"]).splitlines()
        if line.startswith("## ")
    ]
    starts = [section_start(label, headings) for label in labels] + [len(cells)]
    seconds = []
    for a, b in zip(starts, starts[1:]):
        seconds.append(sum((c["metadata"].get("papermill", {}).get("duration") or 0.0) for c in cells[a:b]))
    return seconds, float(nb["metadata"]["papermill"]["duration"])


def fmt(seconds: float) -> str:
    return "< 1 s" if seconds < 0.5 else f"{seconds:.0f} s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", type=Path, help="folder of notebooks executed with quick=True")
    parser.add_argument("--workshop", type=Path, help="folder of notebooks executed at the default size")
    parser.add_argument("--write", action="store_true", help="write the times into the notebooks' header tables")
    args = parser.parse_args(argv)
    if not (args.quick or args.workshop):
        parser.error("give --quick DIR and/or --workshop DIR")
    for source in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")):
        text = source.read_text()
        labels = header_rows(text)
        measured = {}
        for column, folder in (("quick", args.quick), ("workshop", args.workshop)):
            executed = folder / f"{source.stem}.ipynb" if folder else None
            if executed and executed.exists():
                measured[column] = section_seconds(executed, labels)
        if not measured:
            continue
        print(f"\n{source.stem}")
        for i, label in enumerate(labels):
            cols = "  ".join(f"{c} {fmt(v[0][i]):>6}" for c, v in measured.items())
            print(f"  {label:<55} {cols}")
        print("  " + f"{'whole notebook':<55} " + "  ".join(f"{c} {fmt(v[1]):>6}" for c, v in measured.items()))
        if args.write:
            lines = text.splitlines(keepends=True)
            row = 0
            for n, line in enumerate(lines):
                m = ROW.match(line.rstrip("\n"))
                if not m or m["label"] in ("section", "---"):
                    continue
                whole = m["label"].startswith("**whole")
                cells = {k: m[k] for k in ("quick", "workshop")}
                for column, (per_row, total) in measured.items():
                    cells[column] = f"**{fmt(total)}**" if whole else fmt(per_row[row])
                lines[n] = f"# | {m['label']} | {cells['quick']} | {cells['workshop']} | {m['gpu']} |\n"
                if not whole:
                    row += 1
            source.write_text("".join(lines))
            print(f"  written to {source.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
