"""The course material: instructor cells and links in the notebooks (fast), and the course
site built from the quick executions and checked in headless Chromium (slow).

The browser checks need Playwright for Python and Debian's ``chromium`` (.ci/run installs
both). Without them the slow tests skip, unless ``CI`` or ``CODA_EDU_REQUIRE_BROWSER`` is
set: then they fail, so CI cannot turn green by skipping them.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import importlib
import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.parse
from pathlib import Path

import nbformat
import pytest

from coda_course import notebooks
from tests.conftest import REPO

CHROMIUM = os.environ.get("CODA_EDU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
METHOD_DOC = REPO / "docs" / "method.md"
LINK = re.compile(r"\]\((\.\./[^)\s]+)\)")
DOTTED = re.compile(r"`((?:coda_edu|coda_course)(?:\.\w+)+)`")
# formulas, in symbols or defined in words (*Precision* of pseudo-class k: ...)
FORMULA = re.compile(r"∝|←|\^α|λ\(t\)|π_[lu]|w\(c\)|Σ|2\|P ∩ T\||q ≥|1/√n|\*Precision\*|\*Coverage\*")


# --------------------------------------------------------------------------- helpers
def browser_or_skip():
    """Playwright's sync API and the chromium binary, or skip (fail in CI)."""
    required = bool(os.environ.get("CI") or os.environ.get("CODA_EDU_REQUIRE_BROWSER"))
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem, sync_playwright = "Playwright for Python is not installed (pip install -e '.[dev]')", None
    if problem is None and not Path(CHROMIUM).is_file():
        problem = f"{CHROMIUM} not found (apt-get install chromium, or set CODA_EDU_CHROMIUM)"
    if problem:
        if required:
            pytest.fail(f"browser test required in CI: {problem}")
        pytest.skip(problem)
    return sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def github_slug(title: str) -> str:
    """The anchor GitHub and MyST (myst_heading_anchors) give a heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    return {github_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", path.read_text(), re.M)}


def markdown_cells(name: str) -> list[str]:
    nb = nbformat.read(notebooks.paired_path(name), as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def resolve_dotted(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


# --------------------------------------------------------------------------- item 5: instructor material
@pytest.mark.parametrize("name", notebooks.SERIES)
def test_notebook_has_an_instructor_header_and_references(name):
    cells = markdown_cells(name)
    header = next((c for c in cells[:3] if "### Before you start" in c), None)
    assert header, f"{name}: no 'Before you start' cell after the title"
    for needed in (
        "**Prerequisites.**",
        "**Time**",
        "| section | quick",
        "workshop",
        "GPU",
        "../docs/glossary.md",
        "../docs/teaching.md",
        "../docs/method.md",
    ):
        assert needed in header, f"{name}: the header cell lacks {needed!r}"
    assert "whole notebook" in header and "not measured" in header, name
    refs = " ".join(next((c for c in cells if c.startswith("## References")), "").split())
    assert "Co-Distribution Alignment" in refs and "Bioengineering" in refs, f"{name}: no Co-DA reference"


def test_references_name_the_papers_of_the_series():
    text = " ".join(" ".join(markdown_cells(n)) for n in notebooks.SERIES).replace("\n#", " ")
    text = " ".join(text.split())
    for needed in (
        "Semi-Supervised Medical Image Segmentation with Co-Distribution Alignment",
        "Semi-Supervised Semantic Segmentation with Cross Pseudo Supervision.* CVPR 2021",
        "ReMixMatch",
        "ICLR 2020",
        "FixMatch",
        "NeurIPS 2020",
        "Mean teachers",
        "NeurIPS 2017",
    ):
        assert needed in text, needed


@pytest.mark.parametrize("name", notebooks.SERIES)
def test_relative_links_of_the_notebooks_resolve(name):
    """Every ../docs/*.md#anchor and ../coda_edu/*.py link points at a file (and a heading) that exists."""
    for cell in markdown_cells(name):
        for target in LINK.findall(cell):
            path, _, anchor = target.partition("#")
            file = (notebooks.notebook_dir() / path).resolve()
            assert file.is_file(), f"{name}: link to missing {path}"
            if anchor:
                assert anchor in anchors_of(file), f"{name}: {path} has no heading with anchor #{anchor}"


def test_named_functions_exist():
    """Every `coda_edu.x.y` (or `coda_course.x.y`) that the notebooks, the glossary or the guide name can be imported."""
    texts = ["\n".join(markdown_cells(n)) for n in notebooks.SERIES]
    texts += [(REPO / "docs" / doc).read_text() for doc in ("glossary.md", "teaching.md")]
    names = sorted({d for text in texts for d in DOTTED.findall(text)})
    assert len(names) >= 10
    missing = []
    for dotted in names:
        try:
            resolve_dotted(dotted)
        except (ImportError, AttributeError):
            missing.append(dotted)
    assert not missing, f"named but not found: {missing}"


@pytest.mark.parametrize("name", notebooks.SERIES)
def test_every_formula_links_to_method_md_and_its_function(name):
    """A markdown cell with a formula is followed (in it or the next markdown cell) by a link to the
    docs that define it and by the coda_edu or coda_course function that computes it."""
    cells = markdown_cells(name)
    formulas = 0
    for i, cell in enumerate(cells):
        # the recap restates formulas that are linked where they are introduced
        if not FORMULA.search(cell) or cell.startswith(("### Before you start", "## References", "## Recap")):
            continue
        formulas += 1
        near = "\n".join(cells[i : i + 3])  # the cell and the two markdown cells after it (the title: header, link)
        assert re.search(r"\.\./docs/(method|evaluation)\.md", near), (
            f"{name}: formula cell without a link to docs/method.md: {cell[:80]!r}"
        )
        assert DOTTED.search(near), f"{name}: formula cell without the function computing it: {cell[:80]!r}"
    assert formulas >= 1, f"{name}: no formula found (update FORMULA?)"


def test_glossary_and_teaching_guide():
    glossary = (REPO / "docs" / "glossary.md").read_text()
    for term in ("Class marginal", "Alignment", "Pseudo-label", "Over-expectation", "CPS", "EMA", "Dice"):
        assert f"**{term}" in glossary, term
    guide = (REPO / "docs" / "teaching.md").read_text()
    for section in (
        "## Schedule",
        "## What to prepare",
        "## Which size to run",
        "## Where students get stuck",
        "## Exercises and their answers",
        "## CPU and GPU",
    ):
        assert section in guide, section
    assert "solutions=True" in guide and "make book" in guide
    for name in notebooks.SERIES:
        assert "../docs/glossary.md" in notebooks.source_path(name).read_text(), name


# --------------------------------------------------------------------------- item 6: the site
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: Path):
    """A local HTTP server for ``folder`` in a thread: (base_url, server)."""
    port = free_port()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", server


def check_site(html: Path, screenshots: Path | None = None) -> dict[str, dict]:
    """Open every page of the site in headless Chromium; return per page the console errors,
    failed and off-site requests, and the number of images, plotly figures and widgets."""
    sync_playwright = browser_or_skip()
    base, server = serve(html)
    pages = sorted(
        p.relative_to(html).as_posix()
        for p in html.rglob("*.html")
        if not p.relative_to(html).as_posix().startswith(("_", "genindex", "search"))
    )
    report = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for rel in pages:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    errors, requests = [], []
                    page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
                    page.on("pageerror", lambda exc, e=errors: e.append(f"page error: {exc}"))
                    page.on("requestfailed", lambda r, e=errors: e.append(f"failed request: {r.url}"))
                    page.on("request", lambda r, q=requests: q.append(r.url))
                    page.on(
                        "response",
                        lambda r, e=errors: e.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
                    )
                    page.goto(f"{base}/{rel}", wait_until="load", timeout=60_000)
                    page.wait_for_timeout(500)
                    counts = page.evaluate("""() => ({
                        images: [...document.querySelectorAll('main img')].filter(i => i.complete && i.naturalWidth > 0).length,
                        plotly: document.querySelectorAll('main .js-plotly-plot').length,
                        widgets: document.querySelectorAll('main .coda-widget-root').length,
                        widget_views: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
                        explorers: document.querySelectorAll('main .coda-explorer .js-plotly-plot').length,
                        explorer_specs: document.querySelectorAll('script[type="application/vnd.coda-edu.explorer+json"]').length,
                        placeholders: document.querySelectorAll('main .coda-widget-unknown, main .coda-widget-missing').length,
                        raw_widget_text: /VBox\\(children=|HBox\\(children=/.test(document.body ? document.body.innerText : ""),
                        shrunk: [...document.querySelectorAll('main img')].filter(i => i.complete && i.naturalWidth > 0)
                            .map(i => ({src: i.src.slice(-40), scale: i.clientWidth / i.naturalWidth}))
                            .filter(x => x.scale < 0.8),
                    })""")
                    offsite = [u for u in requests if not u.startswith((base, "data:", "blob:", "about:"))]
                    report[rel] = {**counts, "errors": errors, "offsite": offsite}
                    if screenshots is not None:
                        screenshots.mkdir(parents=True, exist_ok=True)
                        page.screenshot(path=str(screenshots / (rel.replace("/", "_") + ".png")), full_page=False)
                    page.close()
            finally:
                browser.close()
    finally:
        server.shutdown()
    return report


@pytest.fixture(scope="module")
def built_site(tmp_path_factory, request):
    """The site built from quick executions: CODA_EDU_BOOK_NOTEBOOKS names a folder of executed
    notebooks to reuse; otherwise the session's quick executions (the ``quick_series`` fixture,
    shared with tests/test_notebooks.py, so the series is executed once per test run)."""
    import subprocess
    import sys

    browser_or_skip()
    if shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) is None:
        if os.environ.get("CI") or os.environ.get("CODA_EDU_REQUIRE_BROWSER"):
            pytest.fail("jupyter-book is not installed (pip install -e '.[book]')")
        pytest.skip("jupyter-book is not installed (pip install -e '.[book]')")
    out = tmp_path_factory.mktemp("book")
    if os.environ.get("CODA_EDU_BOOK_NOTEBOOKS"):
        executed = Path(os.environ["CODA_EDU_BOOK_NOTEBOOKS"])
    else:
        executed = request.getfixturevalue("quick_series")[0]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(REPO / "book" / "build.py"), "--executed", str(executed), "--out", str(out / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, f"make book failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out / "site" / "html", executed, time.perf_counter() - start, done.stdout


class _Links(html.parser.HTMLParser):
    """The links (a href, img/script src, link href) and the ids of one HTML page."""

    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        ref = attrs.get("href") if tag in ("a", "link") else attrs.get("src") if tag in ("img", "script") else None
        if ref:
            self.links.append((tag, ref))


def dead_links(html_root: Path) -> list[str]:
    """Every link of the built site whose file, or whose #anchor in that file, does not exist."""
    pages = {p: _Links() for p in html_root.rglob("*.html")}
    for path, parser in pages.items():
        parser.feed(path.read_text(errors="replace"))
    dead = []
    for path, parser in pages.items():
        if path.relative_to(html_root).parts[0].startswith("_"):
            continue  # the theme's templates and the copied sources are not pages of the site
        for tag, ref in parser.links:
            parts = urllib.parse.urlsplit(ref)
            if parts.scheme or ref.startswith(("//", "mailto:", "data:", "javascript:")):
                continue  # off-site links are not followed (the site never loads them: test_site_pages_render...)
            target = path if not parts.path else (path.parent / urllib.parse.unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{path.relative_to(html_root)}: <{tag}> {ref}"
            if not target.is_file():
                dead.append(f"{where} (no file {target})")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if urllib.parse.unquote(parts.fragment) not in ids:
                    dead.append(f"{where} (no #{parts.fragment} in {target.name})")
    return dead


@pytest.mark.slow
def test_executed_notebooks_keep_their_widget_state(built_site):
    _, executed, _, _ = built_site
    for name in notebooks.SERIES:
        nb = json.loads((executed / f"{name}.ipynb").read_text())
        state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        views = [
            o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
            for c in nb["cells"]
            for o in c.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        assert views, f"{name}: no widget output"
        for model_id in views:
            assert model_id in state.get("state", {}), f"{name}: widget {model_id} shown but its state is not saved"


@pytest.mark.slow
def test_site_pages_render_offline_without_errors(built_site):
    html, _, seconds, log = built_site
    assert (html / "index.html").is_file()
    screenshots = Path(os.environ["CODA_EDU_SCREENSHOTS"]) if os.environ.get("CODA_EDU_SCREENSHOTS") else None
    report = check_site(html, screenshots)
    expected = {f"notebooks/{n}.html" for n in notebooks.SERIES} | {
        "intro.html",
        "docs/glossary.html",
        "docs/teaching.html",
        "docs/method.html",
    }
    assert expected <= set(report), f"pages missing from the site: {expected - set(report)}"
    problems = {
        page: r["errors"] + [f"off-site request: {u}" for u in r["offsite"]]
        for page, r in report.items()
        if r["errors"] or r["offsite"]
    }
    assert not problems, f"console errors or off-site requests: {json.dumps(problems, indent=1)[:3000]}"
    for name in notebooks.SERIES:
        r = report[f"notebooks/{name}.html"]
        assert r["images"] + r["plotly"] > 0, f"{name}: no figure on its page ({r})"
        assert r["widgets"] == r["widget_views"], f"{name}: saved widgets not drawn ({r})"
        assert r["explorers"] == r["explorer_specs"], f"{name}: an explorer with precomputed states not drawn ({r})"
        assert r["widgets"] + r["explorers"] > 0, f"{name}: no control on its page ({r})"
        assert not r["raw_widget_text"], f"{name}: shows a raw VBox(...) repr instead of the controls"
        assert r["placeholders"] == 0, f"{name}: a saved widget is drawn as a placeholder ({r})"
        # figures readable at the site's width: no image shrunk below 80 % of its pixels
        assert not r["shrunk"], f"{name}: figures shrunk to fit the page: {r['shrunk']}"
    for name in ("02_distribution_alignment", "05_compare_runs"):
        assert report[f"notebooks/{name}.html"]["explorers"] >= 1, f"{name}: no explorer that moves without a kernel"
    assert report["notebooks/02_distribution_alignment.html"]["plotly"] >= 1, "the plotly simplex is not interactive"
    size = sum(p.stat().st_size for p in html.rglob("*") if p.is_file())
    print(f"site: {len(report)} pages, {size / 1e6:.1f} MB, built (executions included) in {seconds:.0f} s")


@pytest.mark.slow
def test_the_site_has_no_dead_link_and_no_unresolved_reference(built_site):
    """Links between the pages, to the docs (evaluation.md, benchmarks.md, data_scripts/README.md...),
    to source files and to anchors all resolve; no markdown link was left as plain text."""
    html, _, _, log = built_site
    assert "[book] 0 unresolved links" in log, log[-2000:]
    dead = dead_links(html)
    assert not dead, f"{len(dead)} dead links:\n" + "\n".join(dead[:40])
    for doc in (
        "docs/evaluation.html",
        "docs/benchmarks.html",
        "docs/benchmarks-acdc.html",
        "data_scripts/README.html",
    ):
        assert (html / doc).is_file(), doc
    page = (html / "notebooks" / "02_distribution_alignment.html").read_text()
    for target in ("../docs/benchmarks-acdc.html#", "../docs/evaluation.html#", "../docs/method.html#"):
        assert f'href="{target}' in page, f"02 links to no {target}"


# the explorers and the control that the browser test moves on each page
EXPLORERS = {
    "02_distribution_alignment": ("Distribution alignment on real predictions", "alpha"),
    "05_compare_runs": ("Methods over seeds", "baseline"),
}


@pytest.mark.slow
def test_explorers_move_on_the_site_without_a_kernel(built_site):
    """In headless Chromium, moving a control of 02's alignment explorer and of 05's comparison draws
    another precomputed state: the figure's data change, and nothing but the page's own files is loaded."""
    sync_playwright = browser_or_skip()
    html = built_site[0]
    base, server = serve(html)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for name, (title, control) in EXPLORERS.items():
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    requests, errors = [], []
                    page.on("request", lambda r, q=requests: q.append(r.url))
                    page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                    page.goto(f"{base}/notebooks/{name}.html", wait_until="load", timeout=60_000)
                    root = page.locator(".coda-explorer", has=page.locator(".coda-explorer-title", has_text=title))
                    root.locator(".js-plotly-plot").wait_for(timeout=30_000)
                    plot = root.locator(".coda-explorer-plot")
                    figure = "el => JSON.stringify(el.data.map(t => [t.x, t.y]))"
                    before, state = plot.evaluate(figure), root.get_attribute("data-state")
                    widget = root.locator(f'[data-control="{control}"]')
                    if widget.evaluate("el => el.tagName") == "SELECT":
                        options = widget.locator("option").count()
                        current = int(widget.input_value())
                        widget.select_option(str((current + 1) % options))
                    else:
                        top = int(widget.get_attribute("max"))
                        current = int(widget.input_value())
                        widget.evaluate(
                            "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input')); }",
                            0 if current == top else top,
                        )
                    page.wait_for_timeout(300)
                    after, moved = plot.evaluate(figure), root.get_attribute("data-state")
                    assert moved != state, f"{name}: the explorer's state did not change"
                    assert after != before, f"{name}: moving '{control}' did not change the figure"
                    assert not errors, f"{name}: {errors}"
                    assert all(u.startswith(base) or u.startswith(("data:", "blob:")) for u in requests), requests
                    assert not any("/api/kernels" in u for u in requests)
                    page.close()
            finally:
                browser.close()
    finally:
        server.shutdown()
