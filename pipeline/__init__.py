"""model-atlas: precompute what every unit of an image classifier detects.

The package is pure computation plus one module family that owns files
(``pipeline.store``). Import costs stay low: torch is imported only by the
modules that compute.
"""

__version__ = "0.1.0"


def open_results(path):
    """Open a run's results folder (or one store file) for offline queries."""
    from pipeline.query import open_results as _open

    return _open(path)


def open_comparison(path):
    """Open a comparison of runs (a compare run's folder, or its compare.h5):
    :class:`pipeline.store.compare.CompareStore`."""
    from pipeline.store.compare import open_comparison as _open

    return _open(path)


__all__ = ["open_comparison", "open_results", "__version__"]
