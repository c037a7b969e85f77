"""Progress bars that read well in a terminal, in JupyterLab and in a saved papermill notebook.

Text bars (plain ``tqdm``) are used everywhere: a widget bar would show as
``HBox(...)`` in a notebook executed headless. In a terminal the bar goes to stderr.
Inside a Jupyter kernel it is drawn into *one* display output that each refresh replaces
(an IPython display handle, refreshed at most once a second): JupyterLab shows the bar
moving in place, and an executed notebook (papermill) keeps one output per bar, its
final line, instead of one stream output per refresh.
"""

from __future__ import annotations

import re
import sys

from tqdm import tqdm


def in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        return False
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


class DisplayLine:
    """A file for tqdm inside a Jupyter kernel: every write replaces the text of one display output."""

    def __init__(self):
        self.handle = None
        self.line = ""
        self.updates = 0

    def write(self, text: str) -> int:
        parts = [p for p in re.split(r"[\r\n]", text) if p.strip()]
        if parts and parts[-1] != self.line:
            from IPython.display import display

            self.line = parts[-1]
            bundle = {"text/plain": self.line}
            if self.handle is None:
                self.handle = display(bundle, raw=True, display_id=True)
            else:
                self.handle.update(bundle, raw=True)
            self.updates += 1
        return len(text)

    def flush(self) -> None:
        pass


def progress_bar(
    iterable=None, *, total=None, desc: str = "", enabled: bool = True, initial: int = 0, unit: str = "it"
):
    notebook = in_notebook()
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        disable=not enabled,
        initial=initial,
        unit=unit,
        file=DisplayLine() if notebook and enabled else sys.stderr,
        mininterval=1.0 if notebook else 0.2,
        dynamic_ncols=not notebook,
        ncols=100 if notebook else None,
        leave=True,
    )
