"""Lazy package attributes (PEP 562), so that importing a stage package stays cheap.

The Snakefile imports the stages' settings and planning functions while it builds the
DAG; torch should load only in the jobs that compute. A stage package therefore
imports its light modules eagerly and names the rest here::

    __getattr__, __dir__ = lazy_attributes(__name__, {"run_x": "pipeline.x.job"}, __all__)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping


def lazy_attributes(
    package: str, lazy: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__``: ``lazy[name]`` is the module that
    defines ``name``, imported on first use."""
    lazy, public = dict(lazy), list(public)

    def __getattr__(name: str):
        if name in lazy:
            return getattr(importlib.import_module(lazy[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__
