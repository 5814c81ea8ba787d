"""The HDF5 stores: the only place in model-atlas that knows file layouts.

One module per kind of file, each with its writer and lazy reader:

* :mod:`pipeline.store.featurevis`  feature visualizations (shards and the merged store)
* :mod:`pipeline.store.activations` dataset-wide activations, attributions and reductions;
  :mod:`pipeline.store.activations_reader` reads the reduced store
* :mod:`pipeline.store.blocks`      per-image Building Blocks
* :mod:`pipeline.store.circuits`    circuits between channels of consecutive layers (per layer, merged)
* :mod:`pipeline.store.atlas`       activation atlases (a layer's layout, render jobs' icons, merged)
* :mod:`pipeline.store.run`         the run folder: every file name of a run (:class:`RunFiles`)
* :mod:`pipeline.store.layers`      the run's ``model/layers.json`` (JSON; :class:`ModelLayers`)

Readers answer in typed records (frozen dataclasses, NumPy arrays, lazy datasets), so
that no other module names an HDF5 path (tests/test_structure.py checks it). Conventions
common to all (format name and version, atomic writes, the provenance record, :func:`json_number`)
live in :mod:`pipeline.store._format`. The layouts are specified in docs/STORE.md.
"""

from pipeline.store._format import (
    StoreError,
    atomic_h5,
    config_hash,
    finite_number,
    json_number,
    open_h5,
    set_aside_incomplete_stores,
)
from pipeline.store._provenance import ProvenanceRecord, provenance
from pipeline.store.layers import LayerRecord, ModelLayers, read_layers_json, write_layers_json
from pipeline.store.run import RunFiles

__all__ = [
    "LayerRecord",
    "ModelLayers",
    "ProvenanceRecord",
    "RunFiles",
    "StoreError",
    "atomic_h5",
    "config_hash",
    "finite_number",
    "json_number",
    "open_h5",
    "provenance",
    "read_layers_json",
    "set_aside_incomplete_stores",
    "write_layers_json",
]
