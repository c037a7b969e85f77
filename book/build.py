"""Build the course site (Jupyter Book 1.x) from the executed notebooks: ``make book``.

    python book/build.py [--executed DIR] [--out build/book] [--execute]

1. With ``--execute`` (or when ``DIR`` holds no executed notebooks) the series is run at
   the quick size into ``DIR`` (``coda-edu notebooks run --quick``; the widget state is
   saved in each notebook's metadata).
2. A source folder ``OUT/src`` is staged: ``book/`` (config, table of contents, intro,
   ``_static``), the executed notebooks under ``notebooks/``, ``docs/*.md`` and its
   figures under ``docs/``, and the ``coda_edu/`` and ``coda_course/`` sources (the notebooks
   link to the functions' source). Relative links such as ``../docs/method.md#...`` resolve there
   as they do in the repository.
3. Plotly outputs get an offline HTML version that uses ``_static/plotly.min.js`` (copied
   from the installed plotly package) instead of the CDN that the notebooks' fallback
   names; explorers whose states were precomputed (``coda_course.static``) become
   controls that move in the browser (``_static/coda-explorers.js``); the other widget
   outputs are drawn from the saved state by ``_static/coda-widgets.js``.
4. ``jupyter-book config sphinx`` turns ``_config.yml`` into a Sphinx ``conf.py``, which is
   adjusted (:func:`adjust_conf`) before ``sphinx-build`` writes the site to ``OUT/html``.

Nothing is downloaded: the site works offline.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from coda_course.notebooks import SERIES  # the one list of the series

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
EXPLORER_MIME = "application/vnd.coda-edu.explorer+json"  # coda_course.static.MIME
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def plotly_js() -> Path:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise SystemExit(f"plotly.min.js not found in the plotly package ({path})")
    return path


def adjust_conf(conf: Path) -> None:
    """Jupyter Book 1 registers sphinx-thebe twice (the page then declares THEBE_JS_URL twice:
    a console error) although the site launches no kernel: drop it. The theme starts light; the
    notebooks' pages have no secondary (page contents) column, so their figures get its width."""
    text = conf.read_text()
    text = text.replace("'sphinx_thebe', ", "").replace(", 'sphinx_thebe'", "")
    conf.write_text(
        text
        + "\nhtml_context = {'default_mode': 'light'}\nhtml_favicon = '_static/favicon.png'\n"
        # the notebooks' pages give their width to the figures (about 950 px instead of 750 at a 1280 px
        # window): no "on this page" column there; the sections are in the notebook's own headings
        + "html_theme_options['secondary_sidebar_items'] = {'**': ['page-toc'], 'notebooks/*': []}\n"
    )


def write_favicon(path: Path) -> None:
    """A small icon (browsers ask for one; without it every first visit logs a 404)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((2, 2, 29, 29), fill=(118, 68, 138, 255))
    draw.ellipse((11, 11, 20, 20), fill=(255, 255, 255, 255))
    image.save(path)


def offline_plotly_html(figure: dict, index: int) -> str:
    """A div and a script drawing ``figure`` with the page's plotly.min.js (no CDN)."""
    div_id = f"coda-plotly-{index}"
    payload = json.dumps(
        {
            "data": figure.get("data", []),
            "layout": figure.get("layout", {}),
            "config": {"responsive": True, "displaylogo": False},
        }
    )
    payload = payload.replace("</", "<\\/")
    return (
        f'<div id="{div_id}" class="coda-plotly plotly-graph-div" style="height:520px; width:100%;"></div>\n'
        f'<script type="text/javascript">(function () {{ var spec = {payload};\n'
        f'  function draw() {{ Plotly.newPlot("{div_id}", spec.data, spec.layout, spec.config); }}\n'
        f'  if (window.Plotly) draw(); else window.addEventListener("load", draw); }})();</script>'
    )


def explorer_html(spec: dict) -> str:
    """The precomputed states of an explorer, for ``_static/coda-explorers.js`` to draw (no kernel)."""
    payload = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="{EXPLORER_MIME}">{payload}</script>'


def prepare_notebook(src: Path, dst: Path) -> dict:
    """Copy an executed notebook, giving plotly outputs an offline HTML version and explorers with
    precomputed states their movable version (in place of the saved widget); returns counts."""
    nb = json.loads(src.read_text())
    counts = {"plotly": 0, "images": 0, "widgets": 0, "explorers": 0}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if EXPLORER_MIME in data:
                # the page shows the explorer that moves without a kernel; the saved widget is for JupyterLab
                out["data"] = {
                    "text/html": explorer_html(data[EXPLORER_MIME]),
                    "text/plain": data.get("text/plain", ""),
                }
                counts["explorers"] += 1
                continue
            if PLOTLY_MIME in data:
                data["text/html"] = offline_plotly_html(data[PLOTLY_MIME], counts["plotly"])
                # the page shows the interactive figure; the static PNG stays for viewers without JS
                data.pop("image/png", None)
                counts["plotly"] += 1
            elif "image/png" in data:
                counts["images"] += 1
            if "application/vnd.jupyter.widget-view+json" in data:
                counts["widgets"] += 1
    if counts["widgets"] and not nb.get("metadata", {}).get("widgets"):
        raise SystemExit(
            f"{src} shows widgets but holds no saved widget state "
            f"(application/vnd.jupyter.widget-state+json): execute it with store_widget_state"
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1))
    return counts


ANCHOR = re.compile(r'^<a id="([\w-]+)"></a>\s*$', re.M)
HEADING = re.compile(r"^#{1,3} (.+)$")
DOC_LINK = re.compile(r"\]\(((?:[^)#\s]*/)?[\w.-]+\.md)#([\w-]+)\)")


def heading_slug(title: str) -> str:
    """The anchor MyST gives a heading (myst_heading_anchors; GitHub's rule)."""
    from myst_parser.mdit_to_docutils.base import default_slugify

    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link's text
    return default_slugify(re.sub(r"[`*]", "", text).strip())


def anchor_slugs(text: str) -> dict[str, str | None]:
    """``<a id="name"></a>`` -> the slug of the heading right after it (within three lines), or None
    for an anchor on a paragraph."""
    lines, out = text.splitlines(), {}
    for i, line in enumerate(lines):
        m = ANCHOR.match(line)
        if m:
            heading = next((HEADING.match(x) for x in lines[i + 1 : i + 4] if HEADING.match(x)), None)
            out[m.group(1)] = heading_slug(heading.group(1)) if heading else None
    return out


def myst_links(docs: list[Path]) -> None:
    """The docs mark sections for links with ``<a id="name"></a>`` (GitHub shows that anchor), but
    Sphinx resolves ``#name`` only to targets it knows: in the staged copies each anchor becomes a
    MyST target ``(name)=`` (links within the page) and each link ``other.md#name`` from another
    page points at the heading after the anchor (what MyST resolves across pages), or, for an
    anchor on a paragraph, becomes an HTML link to the target's id on the built page."""
    slugs = {doc.resolve(): anchor_slugs(doc.read_text()) for doc in docs}
    for doc in docs:
        text = doc.read_text()

        def relink(m, doc=doc):
            target = (doc.parent / m.group(1)).resolve()
            anchors = slugs.get(target, {})
            if m.group(2) not in anchors:
                return m.group(0)
            if anchors[m.group(2)]:
                return f"]({m.group(1)}#{anchors[m.group(2)]})"
            return f"]]({m.group(1)[:-3]}.html#{m.group(2)})"  # marked for the HTML rewrite below

        text = DOC_LINK.sub(relink, text)
        text = re.sub(r"\[([^\[\]]+)\]\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)
        doc.write_text(ANCHOR.sub(lambda m: f"({m.group(1)})=", text))


def stage(executed: Path, src: Path) -> dict:
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(BOOK, src, ignore=shutil.ignore_patterns("build.py", "__pycache__"))
    shutil.copy2(plotly_js(), src / "_static" / "plotly.min.js")
    write_favicon(src / "_static" / "favicon.png")
    (src / "docs").mkdir()
    for doc in (REPO / "docs").glob("*.md"):
        shutil.copy2(doc, src / "docs" / doc.name)
    if (REPO / "docs" / "figures").is_dir():
        shutil.copytree(REPO / "docs" / "figures", src / "docs" / "figures")
    # the notebooks and docs link to the library's source files, the data scripts' README and its
    # checksum lists, and the evidence rows: the site carries them (Sphinx serves non-page files as downloads)
    for package in ("coda_edu", "coda_course"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (src / "data_scripts").mkdir()
    shutil.copy2(REPO / "data_scripts" / "README.md", src / "data_scripts" / "README.md")
    shutil.copytree(REPO / "data_scripts" / "checksums", src / "data_scripts" / "checksums")
    shutil.copytree(REPO / "benchmarks" / "evidence", src / "benchmarks" / "evidence")
    myst_links(
        sorted((src / "docs").glob("*.md"))
        + sorted((src / "data_scripts").rglob("*.md"))
        + [src / "benchmarks" / "evidence" / "README.md"]
    )
    counts = {}
    for name in SERIES:
        counts[name] = prepare_notebook(executed / f"{name}.ipynb", src / "notebooks" / f"{name}.ipynb")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--executed",
        default=str(REPO / "build" / "book-notebooks"),
        help="folder with the executed notebooks (default: build/book-notebooks)",
    )
    parser.add_argument("--out", default=str(REPO / "build" / "book"), help="site folder (default: build/book)")
    parser.add_argument("--execute", action="store_true", help="execute the series at the quick size first")
    args = parser.parse_args(argv)
    executed, out = Path(args.executed).resolve(), Path(args.out).resolve()
    missing = [n for n in SERIES if not (executed / f"{n}.ipynb").is_file()]
    start = time.perf_counter()
    if args.execute or missing:
        print(f"[book] executing the series at the quick size into {executed}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "coda_edu.cli", "notebooks", "run", "--quick", "--out", str(executed)],
            cwd=REPO,
            check=True,
        )
    executed_s = time.perf_counter() - start
    counts = stage(executed, out / "src")
    for name, c in counts.items():
        print(
            f"[book] {name}: {c['images']} images, {c['plotly']} plotly figures, {c['widgets']} widgets, "
            f"{c['explorers']} explorers that move without a kernel"
        )
    build_start = time.perf_counter()
    html = out / "html"
    if html.exists():
        shutil.rmtree(html)
    bindir = Path(sys.executable).parent
    subprocess.run(
        [str(bindir / "jupyter-book"), "config", "sphinx", str(out / "src")],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    adjust_conf(out / "src" / "conf.py")
    warnings_file = out / "sphinx-warnings.txt"
    done = subprocess.run(
        [str(bindir / "sphinx-build"), "-q", "-b", "html", "-w", str(warnings_file), str(out / "src"), str(html)],
        cwd=REPO,
    )
    if done.returncode != 0:
        print("[book] the site build failed", file=sys.stderr)
        return done.returncode
    # a link Sphinx cannot resolve is rendered as plain text: report each one (tests/test_book.py requires none)
    unresolved = [
        line for line in warnings_file.read_text().splitlines() if "xref_missing" in line or "target not found" in line
    ]
    for line in unresolved:
        print(f"[book] unresolved link: {line}", file=sys.stderr)
    print(f"[book] {len(unresolved)} unresolved links")
    # Browsers may also ask the server root for /favicon.ico before reading the page's icon
    # link (seen as a rare 404 console error in the CI browser check): serve the icon there too.
    shutil.copyfile(html / "_static" / "favicon.png", html / "favicon.ico")
    size = sum(p.stat().st_size for p in html.rglob("*") if p.is_file())
    print(
        f"[book] site: {html}/index.html ({size / 1e6:.1f} MB); executed in {executed_s:.0f} s, "
        f"built in {time.perf_counter() - build_start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
