"""Explorers that move without a kernel: every state of a few controls, precomputed as plotly figures.

An explorer's controls take a few values each; :func:`static_spec` draws the plotly figure
of every combination and returns one JSON-able spec::

    {"version": 1, "title": ..., "controls": [{"name", "label", "kind": "slider" | "menu",
     "labels": [...], "default": index}, ...], "template": {...}, "states": {"i_j_k": figure}}

(``i_j_k``: the index of each control's value; the plotly template is stored once). An
explorer puts the spec into its display bundle under :data:`MIME`. JupyterLab ignores that
entry (it shows the live widget); the course site (``book/build.py``) turns it into a
``<script type=MIME>`` that ``book/_static/coda-explorers.js`` draws with the page's own
plotly.js: the controls move in the browser, offline, with no kernel.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coda_edu.io import to_jsonable

MIME = "application/vnd.coda-edu.explorer+json"


@dataclass
class Choice:
    """The values one control takes in the precomputed states (``labels``: what the control shows)."""

    values: list
    labels: list[str] = field(default_factory=list)
    kind: str = "slider"  # "slider" or "menu"
    default: int = 0
    label: str = ""

    def __post_init__(self):
        if not self.values:
            raise ValueError("a control needs at least one value")
        if not self.labels:
            self.labels = [_label(v) for v in self.values]
        if len(self.labels) != len(self.values):
            raise ValueError("one label per value")
        if self.kind not in ("slider", "menu"):
            raise ValueError(f"kind must be 'slider' or 'menu', not {self.kind!r}")
        self.default = max(0, min(self.default, len(self.values) - 1))


def _label(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def nearest(values: Sequence[float], value: float) -> int:
    """Index of the value closest to ``value`` (the default position of a precomputed slider)."""
    return min(range(len(values)), key=lambda i: abs(float(values[i]) - float(value)))


def _clean(obj: Any) -> Any:
    """Plain JSON: floats rounded to 5 significant digits, NaN/inf as None, numpy values as Python ones."""
    return to_jsonable(obj, digits=5)


def figure_json(fig) -> dict:
    """A plotly figure as plain JSON (plotly's own encoder, then typed arrays made lists)."""
    import plotly.io as pio

    spec = json.loads(pio.to_json(fig, engine="json", validate=False))
    return _decode_typed(spec)


def _decode_typed(obj: Any) -> Any:
    """plotly >= 6 writes numpy arrays as ``{"dtype", "bdata"}``: turn them back into lists."""
    if isinstance(obj, dict):
        if set(obj) >= {"dtype", "bdata"}:
            import base64

            import numpy as np

            arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            if "shape" in obj:
                arr = arr.reshape([int(s) for s in str(obj["shape"]).split(",")])
            return arr.tolist()
        return {k: _decode_typed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode_typed(v) for v in obj]
    return obj


def static_spec(title: str, controls: dict[str, Choice], figure_at: Callable[..., Any]) -> dict:
    """Every combination of the controls' values drawn by ``figure_at(**values)`` (a plotly figure)."""
    names = list(controls)
    states, template = {}, None
    for index in itertools.product(*(range(len(controls[n].values)) for n in names)):
        values = {n: controls[n].values[i] for n, i in zip(names, index)}
        fig = figure_json(figure_at(**values))
        layout = fig.get("layout", {})
        found = layout.pop("template", None)
        template = template or found
        states["_".join(map(str, index))] = _clean({"data": fig.get("data", []), "layout": layout})
    return {
        "version": 1,
        "title": title,
        "controls": [
            {
                "name": n,
                "label": c.label or n,
                "kind": c.kind,
                "labels": list(c.labels),
                "default": c.default,
            }
            for n, c in controls.items()
        ],
        "template": template or {},
        "states": states,
    }


def spec_state(spec: dict, **values_index: int) -> dict:
    """The figure of a spec at control indices (missing controls at their default): for tests."""
    index = [values_index.get(c["name"], c["default"]) for c in spec["controls"]]
    return spec["states"]["_".join(map(str, index))]
