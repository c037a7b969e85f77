"""The user docs: no issue numbers (a reader has no issue tracker), and the benchmarks are a short summary
page that lists every per-topic page, each also in the course site's table of contents."""

from __future__ import annotations

import re

from tests.conftest import REPO

USER_DOCS = [
    REPO / "README.md",
    REPO / "book" / "intro.md",
    REPO / "data_scripts" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "notebooks").glob("*.py")),
]
ISSUE_NUMBER = re.compile(r"\bissues? #?\d+", re.IGNORECASE)


def test_no_user_doc_speaks_of_issue_numbers():
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()[:80]}"
        for path in USER_DOCS
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ISSUE_NUMBER.search(line)
    ]
    assert found == []


def test_the_rule_finds_issue_numbers():
    assert ISSUE_NUMBER.search("as issue 9 found") and ISSUE_NUMBER.search("Issue #12's target")
    assert not ISSUE_NUMBER.search("a known issue with 2 cores")


def test_benchmarks_is_a_short_summary_of_pages_all_on_the_site():
    summary = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (REPO / "docs").glob("benchmarks-*.md"))
    toc = (REPO / "book" / "_toc.yml").read_text(encoding="utf-8")
    assert len(summary.splitlines()) <= 100 and len(pages) >= 4
    for page in pages:
        assert f"]({page})" in summary, f"docs/benchmarks.md does not list {page}"
        assert f"file: docs/{page[:-3]}\n" in toc, f"book/_toc.yml does not list {page}"
