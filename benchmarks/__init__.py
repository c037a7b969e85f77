"""The benchmark scripts. Each runs as ``python benchmarks/NAME.py`` (or ``python -m benchmarks.NAME``)
and imports its shared helpers from :mod:`benchmarks.common` (machine description, timing, the FLOP
counter and the dense-matmul peak probe, results files and tables)."""
