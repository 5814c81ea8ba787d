"""A tiny comparison site for the tests (tests/test_compare_site.py, its browser test and the
structure test): a run compared with a copy whose "late" channels are permuted and whose
channel 4 is zeroed, and hand-made page data for both runs (feature visualizations on run
a's "late" layer only, examples everywhere, a label on one unit)."""

import numpy as np

from pipeline.compare import CompareSettings, run_compare
from pipeline.labels.rule import Label
from pipeline.site.compare_site import build_comparison_site
from pipeline.site.data import AtlasData, Channel, Example, Layer, ModelInfo
from pipeline.store.compare import open_comparison
from tests.helpers.stores import per_image_store

ORDER = np.array([3, 0, 5, 1, 11, 2, 7, 4, 6, 10, 9, 8])  # copy's channel j = original's ORDER[j]


def tiny_runs(rng, n=160):
    maxima = {"early": rng.gamma(2, size=(n, 6)), "late": rng.gamma(2, size=(n, 12))}
    first = {name: {"max": v, "mean": v / 2 + 0.2 * rng.normal(size=v.shape)} for name, v in maxima.items()}
    second = {name: {q: v.copy() for q, v in qs.items()} for name, qs in first.items()}
    second["late"] = {q: v[:, ORDER].copy() for q, v in first["late"].items()}
    for values in second["late"].values():
        values[:, 7] = 0.0  # the copy's channel 7 (the original's 4) is silent: unmatched both ways
    return first, second


def tiny_member(model: str, fv_layers: set, label_unit=None) -> AtlasData:
    layers = []
    for name, channels in (("early", 6), ("late", 12)):
        units = []
        for c in range(channels):
            tone = np.full((8, 8, 3), 10 * c + (100 if name == "late" else 0), np.uint8)
            examples = [
                Example(f"img{r:02d}", f"img{r:02d}.jpg", 1.0 - r / 10, crop=tone + r) for r in range(4)
            ]
            units.append(Channel(c, featurevis=tone if name in fv_layers else None, examples=examples))
        layers.append(Layer(name, channels, units=units))
    if label_unit is not None:
        layers[1].units[label_unit].label = Label("n02084071", "dog", ("beagle",), 0.5, 20, 1, False)
    return AtlasData(model=ModelInfo(name=model), layers=layers)


def build_tiny_comparison(tmp):
    """The comparison site of the module's docstring, in ``tmp/ab/site``."""
    first, second = tiny_runs(np.random.default_rng(3))
    stores = [per_image_store(tmp / "a", first), per_image_store(tmp / "b", second, model="other")]
    run_compare(CompareSettings(batch_size=32), stores, tmp / "ab" / "compare.h5")
    members = {"a": tiny_member("fake", {"late"}, label_unit=2), "b": tiny_member("other", set())}
    with open_comparison(tmp / "ab") as comparison:
        build_comparison_site(comparison, members, tmp / "ab" / "site")
    return tmp / "ab" / "site"
