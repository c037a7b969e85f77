"""Figures (matplotlib, plotly) used by the CLI and the notebooks; the notebooks' interactive
explorers built on them are in :mod:`coda_course.widgets`.

Every builder returns its object (a Figure) so tests can drive it.
"""

from .figures import class_colors, label_to_rgb, plot_learning_curves, plot_overlay, save_figure

__all__ = ["class_colors", "label_to_rgb", "plot_learning_curves", "plot_overlay", "save_figure"]
