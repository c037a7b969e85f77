"""coda-edu: a teaching toolkit for semi-supervised medical image segmentation with Co-DA."""

__version__ = "0.1.0"
