"""benchmarks/notebook_sections.py: per-section times of executed notebooks from papermill's
cell timings, and the header tables it rewrites."""

import json

import pytest

from benchmarks import notebook_sections as sections
from tests.conftest import REPO

HEADER = """# | section | quick (`quick=True`) | workshop (defaults) | GPU |
# |---|---|---|---|
# | set-up and 1. training | 9 s | 9 s | not measured |
# | 2.–3. plots | 9 s | 9 s | not measured |
# | exercise, recap | 9 s | 9 s | not measured |
# | **whole notebook** (kernel start included) | **9 s** | **9 s** | not measured |
"""


def executed(tmp_path, name="01_x"):
    def cell(kind, source, seconds):
        return {"cell_type": kind, "source": source, "metadata": {"papermill": {"duration": seconds}}}

    nb = {
        "metadata": {"papermill": {"duration": 50.0}},
        "cells": [
            cell("markdown", "# Title", 0.0),
            cell("code", "train()", 30.0),
            cell("markdown", "## 1. Training", 0.0),
            cell("code", "more()", 5.0),
            cell("markdown", "## 2. Plots", 0.0),
            cell("code", "plot()", 2.0),
            cell("markdown", "## 3. More plots", 0.0),
            cell("code", "plot()", 1.5),
            cell("markdown", "A remark.\n\n## Exercise: do it", 0.0),  # the heading inside a cell
            cell("code", "check()", 0.2),
        ],
    }
    path = tmp_path / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_sections_sum_their_cells_and_the_whole_run_is_papermills(tmp_path):
    labels = sections.header_rows(HEADER)
    assert labels == ["set-up and 1. training", "2.–3. plots", "exercise, recap"]
    seconds, whole = sections.section_seconds(executed(tmp_path), labels)
    assert seconds == [35.0, 3.5, 0.2] and whole == 50.0
    assert [sections.fmt(s) for s in seconds] == ["35 s", "4 s", "< 1 s"]


def test_a_section_without_its_heading_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no heading for the section '4. missing'"):
        sections.section_seconds(executed(tmp_path), ["set-up", "4. missing"])


def test_the_header_rows_of_every_notebook_have_their_headings():
    """Each committed notebook's time table names sections that exist in it (what --write relies on)."""
    import jupytext

    for source in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")):
        labels = sections.header_rows(source.read_text())
        assert labels and labels[0].startswith("set-up"), source.name
        nb = jupytext.read(source)
        headings = [
            (i, line)
            for i, c in enumerate(nb.cells)
            if c.cell_type == "markdown"
            for line in c.source.splitlines()
            if line.startswith("## ")
        ]
        starts = [sections.section_start(label, headings) for label in labels]
        assert starts == sorted(starts), source.name
