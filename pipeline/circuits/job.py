"""The workflow's circuits jobs: a few layers' circuits into one file, then the merge.

The layers and their order are the extraction's (the layers of the activations store,
in execution order); each layer's "previous" is the extracted layer before it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from pipeline.circuits.settings import CircuitsSettings
from pipeline.model.spec import ModelSpec
from pipeline.store import ProvenanceRecord, provenance
from pipeline.store.activations_reader import ActivationsStore
from pipeline.store.circuits import METHOD, CircuitsHeader, LayerCircuits, merge_files, write_layer_file

log = logging.getLogger(__name__)


def recorded_settings(settings: CircuitsSettings, model: Mapping, layers: Sequence[str]) -> ProvenanceRecord:
    """What determines a circuits file (its provenance record, hashed into ``config_hash``,
    alike for every layer): the model and weights, the examples, the extracted layers and
    the method."""
    return provenance(
        stage="circuits",
        settings=settings.subset(CircuitsSettings.LAYER_KEYS),
        model=model,
        derived={"layers": list(layers), "method": METHOD},
    )


def run_header(settings: CircuitsSettings, store: ActivationsStore) -> CircuitsHeader:
    """The header of every circuits file of the run whose activations ``store`` is given."""
    names = list(store.layers)
    return CircuitsHeader(
        layers=[{"name": name, "channels": store.layers[name]["channels"]} for name in names],
        model=dict(store.model),
        settings=recorded_settings(settings, store.model, names),
        model_checksum=str(store.model.get("checksum", "")),
    )


def run_circuits_layers(
    settings: CircuitsSettings,
    model: ModelSpec,
    activations: str | os.PathLike,
    layers: Sequence[str],
    output: str | os.PathLike,
) -> dict:
    """Compute the circuits of each of ``layers`` from the extracted layer before it, over
    the top examples in the activations store ``activations``, into one file ``output``
    (:func:`pipeline.store.circuits.write_layer_file`). The model is loaded once for them
    all (a job's start-up costs more than a layer's circuits on a small dataset). Returns
    counts for the log."""
    from pipeline.circuits.compute import layer_circuits
    from pipeline.images.dataset import ImageDataset
    from pipeline.model.registry import load_model_matching

    with ActivationsStore(activations) as store:
        header = run_header(settings, store)
        loaded = load_model_matching(model, header.model_checksum, activations)
        targets = _select_targets(settings, store, [loaded.layer(layer).name for layer in layers])
        dataset = ImageDataset.from_table(store.images, loaded.input_size)
    found = {}
    for layer, chosen in targets.items():
        previous = header.previous(layer)
        log.info(
            "circuits %s <- %s: %d examples of %d channels on %d images",
            layer,
            previous,
            chosen.count,
            len(chosen.examples),
            len(chosen.units),
        )
        result = layer_circuits(loaded, previous, layer, chosen, dataset.decoded, progress=True)
        found[layer] = LayerCircuits(result["from_previous"], result["examples"], chosen.ranks)
    write_layer_file(output, header, found)
    return {"examples": sum(t.count for t in targets.values()), "layers": len(found)}


def _select_targets(settings: CircuitsSettings, store: ActivationsStore, names: Sequence[str]) -> dict:
    """Layer name -> the top examples whose circuits are computed
    (:func:`~pipeline.circuits.compute.select_targets`), with a warning when the store
    keeps fewer examples per channel than ``circuits.examples`` asks for."""
    from pipeline.circuits.compute import select_targets

    targets = {}
    for layer in names:
        top = store.top(layer)
        targets[layer] = select_targets(top.row, top.value, top.y, top.x, settings.examples)
    ranks = min((t.ranks for t in targets.values()), default=settings.examples)
    if ranks < settings.examples:
        log.warning(
            "circuits.examples is %d, but the store keeps %d top examples per channel (extract.top_k)",
            settings.examples,
            ranks,
        )
    return targets


def merge_circuits(
    settings: CircuitsSettings,
    activations: str | os.PathLike,
    layers: Sequence[str | os.PathLike],
    output: str | os.PathLike,
) -> None:
    """Merge the layer files ``layers`` into the run's store ``output``; the activations
    store gives the chain of layers and the provenance every file must share."""
    with ActivationsStore(activations) as store:
        header = run_header(settings, store)
    merge_files(list(layers), output, header)
    log.info("merged the circuits of %d layers (%s) into %s", len(layers), " -> ".join(header.names), output)
