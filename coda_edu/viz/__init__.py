"""Figures (matplotlib, plotly) and ipywidgets builders used by the CLI and the notebooks.

Every builder returns its object (a Figure or a widget) so tests can drive it, and
every interactive builder also draws its default view, so a saved or exported
notebook shows real content without a live kernel.
"""

from .figures import class_colors, label_to_rgb, plot_learning_curves, plot_overlay, save_figure

__all__ = ["class_colors", "label_to_rgb", "plot_learning_curves", "plot_overlay", "save_figure"]
