"""Display helpers that keep saved notebooks readable without a live kernel."""

from __future__ import annotations


def show_plotly(fig) -> None:
    """Display a plotly figure as plotly JSON (JupyterLab renders it interactively) plus an
    HTML fallback that loads plotly.js from its CDN (exported HTML). The notebooks also draw
    a static matplotlib version of every plotly figure, for viewers that run no JavaScript."""
    import json

    from IPython.display import display

    bundle = {
        "application/vnd.plotly.v1+json": json.loads(fig.to_json()),
        "text/html": fig.to_html(include_plotlyjs="cdn", full_html=False),
        "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
    }
    display(bundle, raw=True)
