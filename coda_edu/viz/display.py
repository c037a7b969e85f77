"""Display helpers that keep saved notebooks readable without a live kernel."""

from __future__ import annotations


def show_plotly(fig, static=None) -> None:
    """Display a plotly figure as plotly JSON (JupyterLab renders it interactively) plus an
    HTML fallback that loads plotly.js from its CDN (exported HTML). ``static``, a matplotlib
    version of the same figure, goes into the *same* output as a PNG: viewers that run no
    JavaScript show it, JupyterLab shows only the interactive figure (no duplicate)."""
    import base64
    import json

    from IPython.display import display

    bundle = {
        "application/vnd.plotly.v1+json": json.loads(fig.to_json()),
        "text/html": fig.to_html(include_plotlyjs="cdn", full_html=False),
        "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
    }
    if static is not None:
        from .figures import figure_png

        bundle["image/png"] = base64.b64encode(figure_png(static)).decode("ascii")
    display(bundle, raw=True)
