"""A live JupyterLab in headless Chromium: run a notebook, move a slider with the keyboard,
and see the figure change (slow).

JupyterLab (the ``lab`` extra) is started on 127.0.0.1 on a free port with a random token,
in a temporary folder holding copies of the notebooks whose parameters cell is set to the
quick size (``quick = True``; the sources are untouched), trained at the smoke size of
tests/smoke_preset.yaml (``$CODA_EDU_QUICK_PRESET``: this test checks mechanics, not what
the notebooks show). Each test opens one notebook,
runs all cells from the Run menu, waits until every code cell has run, checks that no
cell shows an error, focuses one slider of an explorer, presses arrow keys, and asserts
that the explorer's figure (the ``src`` of its image) changes. JupyterLab is always
stopped, also when a test fails.

Needs Playwright for Python and Debian's ``chromium``: skipped without them, failed in CI
(``CI`` or ``CODA_EDU_REQUIRE_BROWSER`` set), like tests/test_book.py.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from coda_course import notebooks
from tests.conftest import SMOKE_PRESET
from tests.test_book import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, free_port

RUN_TIMEOUT_S = 900  # all cells of a quick notebook on a loaded 2-core machine
# notebook -> (slider description, why this one): the slider must redraw the explorer's figure
SLIDERS = {
    "01_class_imbalance": "imbalance",
    "02_distribution_alignment": "alpha",
    "03_pseudo_label_filtering": "image",
}


def quick_copy(name: str, folder: Path) -> Path:
    """A copy of the notebook whose parameters cell says ``quick = True``."""
    nb = nbformat.read(notebooks.paired_path(name), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = cell.source.splitlines()
    assert any(line.startswith("quick: bool = False") for line in lines), f"{name}: no 'quick: bool = False' line"
    cell.source = "\n".join(
        "quick: bool = True" + line[len("quick: bool = False") :] if line.startswith("quick: bool = False") else line
        for line in lines
    )
    nb.metadata.pop("jupytext", None)  # a plain notebook here: no paired .py to create next to it
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running JupyterLab: (base_url, token, root folder, log file); stopped at the end."""
    browser_or_skip()
    jupyter = Path(sys.executable).with_name("jupyter")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        if os.environ.get("CI") or os.environ.get("CODA_EDU_REQUIRE_BROWSER"):
            pytest.fail("JupyterLab is not installed (pip install -e '.[lab]')")
        pytest.skip("JupyterLab is not installed (pip install -e '.[lab]')")
    root = tmp_path_factory.mktemp("lab")
    for name in SLIDERS:
        quick_copy(name, root)
    port, token = free_port(), secrets.token_hex(16)
    runtime = root / ".runtime"
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "PYTHONUNBUFFERED": "1",
        "CODA_EDU_QUICK_PRESET": str(SMOKE_PRESET),  # the kernels inherit it
    }
    log_path = root / ".jupyterlab.log"
    log = log_path.open("w")
    cmd = [
        str(jupyter),
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0",
        f"--LabApp.workspaces_dir={root / '.workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI runs as root
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"JupyterLab did not answer on {base} within 180 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield base, token, root, log_path
    finally:
        # the server and its kernels: the whole process group, politely first
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        log.close()


STATE_JS = """() => {
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
      .map(p => p.textContent.trim());
  const stderr = [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')]
      .map(o => o.innerText).filter(t => /Traceback \\(most recent call last\\)|^\\w*Error\\b|Error displaying widget/m.test(t));
  return {prompts, errors: stderr};
}"""

SLIDER_JS = """(description) => {
  const sliders = [...document.querySelectorAll('.jp-Notebook .widget-slider')];
  const slider = sliders.find(s => (s.querySelector('.widget-label') || {}).textContent === description);
  if (!slider) return {found: false, labels: sliders.map(s => (s.querySelector('.widget-label') || {}).textContent)};
  const handle = slider.querySelector('.noUi-handle');
  const output = slider.closest('.jp-OutputArea-output');
  const img = output ? output.querySelector('img') : null;
  return {found: true, value: handle.getAttribute('aria-valuenow'), max: handle.getAttribute('aria-valuemax'),
          src: img ? img.getAttribute('src') : null};
}"""


def run_all_and_move_slider(lab, name: str, screenshot: Path | None = None) -> dict:
    base, token, root, log_path = lab
    sync_playwright = browser_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page_errors = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            # a workspace of its own, reset: JupyterLab must not restore (and re-run) an earlier notebook's tab
            page.goto(
                f"{base}/lab/workspaces/test-{name}/tree/{name}.ipynb?reset&token={token}",
                wait_until="domcontentloaded",
            )
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            # the kernel must be ready before "Run All"
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=180_000)
            page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook is the current widget
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            deadline, state = time.time() + RUN_TIMEOUT_S, {}
            time.sleep(5)
            while time.time() < deadline:
                state = page.evaluate(STATE_JS)
                if state["errors"]:
                    break
                prompts = state["prompts"]
                if prompts and all(p.startswith("[") and p[1:-2].strip().isdigit() for p in prompts):
                    break
                time.sleep(2)
            else:
                pytest.fail(f"{name}: cells still running after {RUN_TIMEOUT_S} s: {state.get('prompts')}")
            assert not state["errors"], (
                f"{name}: error output in JupyterLab:\n" + "\n---\n".join(state["errors"])[:3000]
            )
            description = SLIDERS[name]
            page.locator(".jp-Notebook .widget-slider .noUi-handle").first.wait_for(timeout=60_000)
            before = page.evaluate(SLIDER_JS, description)
            assert before["found"], f"{name}: no slider '{description}' (sliders: {before.get('labels')})"
            assert before["src"], f"{name}: the '{description}' explorer shows no image"
            handle = (
                page.locator(".jp-Notebook .widget-slider", has=page.locator(".widget-label", has_text=description))
                .locator(".noUi-handle")
                .first
            )
            handle.scroll_into_view_if_needed()
            handle.focus()
            key = "ArrowLeft" if before["value"] == before["max"] else "ArrowRight"
            for _ in range(5):
                page.keyboard.press(key)
                time.sleep(0.2)
            after, deadline = before, time.time() + 120
            while time.time() < deadline:
                after = page.evaluate(SLIDER_JS, description)
                if after["src"] and after["src"] != before["src"] and after["value"] != before["value"]:
                    break
                time.sleep(1)
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
            state = page.evaluate(STATE_JS)
            assert after["value"] != before["value"], (
                f"{name}: the keyboard did not move '{description}' ({before['value']})"
            )
            assert after["src"] != before["src"], (
                f"{name}: '{description}' moved {before['value']} -> {after['value']} but the figure did not change"
            )
            assert not state["errors"], f"{name}: error output after moving the slider:\n" + "\n".join(state["errors"])
            assert not page_errors, f"{name}: JavaScript errors in JupyterLab: {page_errors}"
            return {"before": before["value"], "after": after["value"]}
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLIDERS))
def test_lab_runs_the_notebook_and_the_slider_redraws_the_figure(lab, name):
    shots = os.environ.get("CODA_EDU_SCREENSHOTS")
    shot = Path(shots) / f"lab_{name}.png" if shots else None
    if shot is not None:
        shot.parent.mkdir(parents=True, exist_ok=True)
    moved = run_all_and_move_slider(lab, name, shot)
    print(f"{name}: slider moved {moved['before']} -> {moved['after']}, figure redrawn")
