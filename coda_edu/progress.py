"""Progress bars that read well in a terminal, in JupyterLab and in a saved papermill notebook.

Text bars (plain ``tqdm``) are used everywhere: a widget bar would show as
``HBox(...)`` in a notebook executed headless. Inside a Jupyter kernel the bar is
written to stdout (not the red stderr stream) and refreshed at most once a second,
so an executed notebook keeps only a few hundred bytes of it.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        return False
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


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
        file=sys.stdout if notebook else sys.stderr,
        mininterval=1.0 if notebook else 0.2,
        dynamic_ncols=not notebook,
        ncols=100 if notebook else None,
        leave=True,
    )
