"""The HDF5 stores: the only place in model-atlas that knows file layouts.

One module per kind of file, each with its writer and lazy reader:

* :mod:`pipeline.store.featurevis`  feature visualizations (shards and the merged store)
* :mod:`pipeline.store.activations` dataset-wide activations, attributions and reductions
* :mod:`pipeline.store.blocks`      per-image Building Blocks

Conventions common to all (format name and version, atomic writes, provenance)
live in :mod:`pipeline.store._format`. The layouts are specified in docs/STORE.md.
"""
from pipeline.store._format import (StoreError, atomic_h5, config_hash, open_h5,
                                    set_aside_incomplete_stores)

__all__ = ["StoreError", "atomic_h5", "config_hash", "open_h5", "set_aside_incomplete_stores"]
