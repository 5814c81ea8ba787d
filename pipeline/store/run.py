"""The run folder ``results/<run>/``: the one place that names every file of a run.

The workflow's rules (``workflow/rules/*.smk``), the site's reader and the queries ask a
:class:`RunFiles` for a file by what it is, never spell its path. The parts of a path that
vary (a layer, a shard's image range, a level) are arguments, so that the rules can pass
their wildcards (``"{layer}"``) and the input functions real values:

>>> run = RunFiles("results/demo")
>>> str(run.activations), str(run.atlas_layout("{layer}"))
('results/demo/activations.h5', 'results/demo/atlas/{layer}/layout.h5')
>>> str(run.extract_shard(0, 5)), str(run.log("extract_shard", "0-5"))
('results/demo/extract/shards/0-5.h5', 'results/demo/logs/extract_shard/0-5.log')

The layout (docs/STORE.md describes each file's format)::

    model/layers.json                                the model's layers (ModelLayers)
    dataset/images.json                              the dataset's image listing
    featurevis/shards/<layer>/<start>-<stop>.h5      feature visualization jobs
    featurevis.h5                                    their merged store
    extract/shards|partials|examples/<start>-<stop>.h5, extract/merged.h5
    activations.h5                                   the reduced activations store
    blocks/images.json, blocks/images/<index>.h5     Building Blocks: featured images, one file each
    blocks.h5                                        their merged store
    circuits/parts/<first layer>.h5, circuits.h5     circuits jobs, merged store
    atlas/<layer>/layout.h5                          an atlas layer's layout
    atlas/<layer>/icons/<level>/<start>-<stop>.h5    its cells' icons
    atlas.h5                                         the merged atlas store
    scores/parts/<layer>.h5, scores.h5               per-unit scores: one part per layer, merged
    compare.h5                                       a compare run's comparison of its member runs
    site/                                            the static site
    logs/<rule>/<job>.log, benchmarks/<rule>[/<job>].tsv
"""

from __future__ import annotations

import os
from pathlib import Path

# The folders of extract/ that hold one file per shard of images.
EXTRACT_FOLDERS = ("shards", "partials", "examples")


def _range(start, stop) -> str:
    """``<start>-<stop>.h5``: a file of a range of images, channels or cells."""
    return f"{start}-{stop}.h5"


class RunFiles:
    """Every file of the run folder ``root``, by what it is (paths, not checked to exist)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFiles({str(self.root)!r})"

    # -- the model and the datasets ------------------------------------------------------
    @property
    def layers_json(self) -> Path:
        """The model's layers, written by the `layers` checkpoint
        (:func:`pipeline.store.layers.read_layers_json`)."""
        return self.root / "model" / "layers.json"

    @property
    def dataset_listing(self) -> Path:
        """The listing of the dataset's images (:func:`pipeline.images.read_listing`)."""
        return self.root / "dataset" / "images.json"

    @property
    def featured_listing(self) -> Path:
        """The listing of the images Building Blocks features."""
        return self.root / "blocks" / "images.json"

    # -- the stores the site and the queries read ----------------------------------------
    @property
    def featurevis(self) -> Path:
        return self.root / "featurevis.h5"

    @property
    def activations(self) -> Path:
        return self.root / "activations.h5"

    @property
    def blocks(self) -> Path:
        return self.root / "blocks.h5"

    @property
    def circuits(self) -> Path:
        return self.root / "circuits.h5"

    @property
    def atlas(self) -> Path:
        return self.root / "atlas.h5"

    @property
    def scores(self) -> Path:
        """Every unit's trust scores (:mod:`pipeline.store.scores`)."""
        return self.root / "scores.h5"

    @property
    def compare(self) -> Path:
        """A compare run's comparison of its member runs (:mod:`pipeline.store.compare`)."""
        return self.root / "compare.h5"

    @property
    def site(self) -> Path:
        """The static site's folder."""
        return self.root / "site"

    # -- the jobs' own files, merged into the stores above ------------------------------
    def featurevis_shard(self, layer, start, stop) -> Path:
        return self.root / "featurevis" / "shards" / str(layer) / _range(start, stop)

    def extract_file(self, folder: str, start, stop) -> Path:
        """A shard of the extraction (``folder``: ``shards``), or its reduction's
        ``partials`` or ``examples``."""
        if folder not in EXTRACT_FOLDERS:
            raise ValueError(f"no extract folder {folder!r}; folders: {', '.join(EXTRACT_FOLDERS)}")
        return self.root / "extract" / folder / _range(start, stop)

    def extract_shard(self, start, stop) -> Path:
        return self.extract_file("shards", start, stop)

    @property
    def extract_merged(self) -> Path:
        """The reduction's merged partials."""
        return self.root / "extract" / "merged.h5"

    def blocks_image(self, index) -> Path:
        return self.root / "blocks" / "images" / f"{index}.h5"

    def circuits_part(self, first_layer) -> Path:
        """The circuits of a run of layers, named by its first layer."""
        return self.root / "circuits" / "parts" / f"{first_layer}.h5"

    def scores_part(self, layer) -> Path:
        """One layer's scores, kept so that a killed ``scores`` job resumes at the next layer."""
        return self.root / "scores" / "parts" / f"{layer}.h5"

    def atlas_layout(self, layer) -> Path:
        return self.root / "atlas" / str(layer) / "layout.h5"

    def atlas_icons(self, layer, level, start, stop) -> Path:
        return self.root / "atlas" / str(layer) / "icons" / str(level) / _range(start, stop)

    # -- the workflow's records of its jobs ----------------------------------------------
    def log(self, rule: str, *job: str) -> Path:
        """``logs/<rule>/<job...>.log``: a job's log (a rule with one job names it twice)."""
        if not job:
            raise ValueError(f"log of rule {rule!r}: name the job (the rule's name for a single job)")
        return (self.root / "logs" / rule).joinpath(*job[:-1]) / f"{job[-1]}.log"

    def benchmark(self, rule: str, *job: str) -> Path:
        """``benchmarks/<rule>/<job...>.tsv``, or ``benchmarks/<rule>.tsv`` for a rule with
        one job."""
        if not job:
            return self.root / "benchmarks" / f"{rule}.tsv"
        return (self.root / "benchmarks" / rule).joinpath(*job[:-1]) / f"{job[-1]}.tsv"
