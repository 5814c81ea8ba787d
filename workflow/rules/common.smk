# Shared by every stage: the stages' settings, where results go, which layers exist,
# wildcard rules.
from pipeline.atlas import AtlasSettings
from pipeline.blocks import BlocksSettings
from pipeline.circuits import CircuitsSettings
from pipeline.extract import ExtractSettings
from pipeline.featurevis import FeaturevisSettings, plan_shards
from pipeline.images import DatasetSettings, read_listing
from pipeline.labels import LabelSettings
from pipeline.model import ModelSpec
from pipeline.scores import ScoresSettings
from pipeline.store import RunFiles, read_layers_json

RUN_DIR = f"{config['results_dir']}/{config['run']}"
# Every file of the run is named by RUN (pipeline/store/run.py), here and in the rules;
# Snakemake wants strings, so the rules wrap its paths in str().
RUN = RunFiles(RUN_DIR)


# -- the stages' settings, built once from the validated config ----------------------
#
# A job gets its stage's settings from its rule's `params`, as a dict of ONLY the keys
# that decide its output, in a fixed order (`SETTINGS_X.subset(keys)`): a changed param
# re-runs the job (Snakemake's `params` rerun trigger), so keys for other jobs, speed
# settings and the order of the YAML file stay out. The script rebuilds the settings
# object (`XSettings.from_config(snakemake.params.settings)`; keys left out take their
# defaults, which that job does not use).
#
# Speed settings the job needs (extract.batch_size, extract.num_workers) change how fast
# it runs, never what it writes. They reach it as `resources` of its rule, since
# Snakemake's rerun triggers are mtime, params, input, software-env and code: changing
# them re-runs nothing (tests/test_resume.py checks it), and `--set-resources
# extract_shard:batch_size=8` changes them for one run without touching the config.
# The script merges them back into the settings (`ExtractSettings.SPEED_KEYS`). The
# planning settings (channels_per_job, images_per_shard) only shape the DAG, here.
SETTINGS_MODEL = ModelSpec.from_workflow_config(config)
SETTINGS_DATASET = DatasetSettings.from_config(config["dataset"])
SETTINGS_FEATUREVIS = FeaturevisSettings.from_config(config["featurevis"])
SETTINGS_EXTRACT = ExtractSettings.from_config(config["extract"])
SETTINGS_BLOCKS = BlocksSettings.from_config(config["blocks"])
SETTINGS_CIRCUITS = CircuitsSettings.from_config(config["circuits"])
SETTINGS_ATLAS = AtlasSettings.from_config(config["atlas"])
SETTINGS_SCORES = ScoresSettings.from_config(config["scores"])
SETTINGS_LABELS = LabelSettings.from_config(config["labels"])
SETTINGS_LABELS.check_hierarchy_file()  # a bad file stops the run before any job
# The atlas samples inside the extraction pass: no atlas without extraction.
ATLAS_ENABLED = bool(config["atlas"]["enabled"] and config["extract"]["enabled"])


wildcard_constraints:
    layer=r"[A-Za-z0-9_][A-Za-z0-9_.\-]*",
    start=r"\d+",
    stop=r"\d+",


def discovered_layers():
    """The model's layers (pipeline.store.ModelLayers) from the layers.json the `layers`
    checkpoint wrote (waits for it in the DAG)."""
    return read_layers_json(checkpoints.layers.get().output[0])


def select_layers(selection):
    """Resolve a config layer selection ("all", "model": the model's Building Blocks
    layers, or names/aliases) to layer records (pipeline.store.LayerRecord).

    An unknown name stops the workflow with a message listing the layers that exist.
    """
    return discovered_layers().select(selection)


def select_atlas_layers(selection):
    """The activation atlas's layers: "model" is the model's own atlas layer (layers.json's
    `atlas_layers`), else names/aliases as in `select_layers`."""
    return discovered_layers().select_atlas(selection)


# The software of every job, for --use-conda (relative to workflow/rules/, where all rules live).
CONDA_ENV = "../envs/model-atlas.yaml"

# resources: gpu= of the jobs that run the model on the run's device (the GPU pool's unit).
GPU_JOB = 1 if SETTINGS_MODEL.device.startswith("cuda") else 0


# -- input functions of the stages (kept here, apart from the rules) --------------

def checked_layers_json(selection):
    """Input function for a stage's jobs: layers.json, once every layer named in the
    stage's layer ``selection`` is known to exist (a clear error listing them if not)."""

    def layers_json(wildcards):
        select_layers(selection)
        return str(RUN.layers_json)

    return layers_json


def atlas_sampling(wildcards):
    """The `atlas` params of an extraction shard: the atlas layers (names) and the sampling
    keys, or None when the atlas is disabled (after the `layers` checkpoint)."""
    if not ATLAS_ENABLED:
        return None
    return {
        "layers": [layer.name for layer in select_atlas_layers(SETTINGS_ATLAS.layers)],
        **SETTINGS_ATLAS.subset(AtlasSettings.SAMPLING_KEYS),
    }


def extract_shard_files(wildcards, folder="shards"):
    """One file per `images_per_shard` images of the listing in extract/<folder>/: the
    shards, or their partials or examples (waits for the checkpoint)."""
    count = len(read_listing(checkpoints.list_images.get().output[0]))
    step = SETTINGS_EXTRACT.images_per_shard
    return [str(RUN.extract_file(folder, start, min(start + step, count)))
            for start in range(0, count, step)]


def extract_partial_files(wildcards):
    return extract_shard_files(wildcards, "partials")


def extract_examples_files(wildcards):
    return extract_shard_files(wildcards, "examples")


def featurevis_shard_files(wildcards):
    """Every feature-visualization shard of the run: the selected layers, each split into
    ranges of `channels_per_job` channel ids (waits for the `layers` checkpoint)."""
    fv = SETTINGS_FEATUREVIS
    return [str(RUN.featurevis_shard(layer.name, start, stop))
            for layer in select_layers(fv.layers)
            for start, stop in plan_shards(fv.channels, layer.channels, fv.channels_per_job,
                                           layer.name)]


def featurevis_render_settings(wildcards):
    """A featurevis shard's settings (its params), with `extra_layers` resolved to names
    ("blocks": the Building Blocks stage's layers), after the `layers` checkpoint."""
    fv = SETTINGS_FEATUREVIS
    settings = fv.subset(FeaturevisSettings.SHARD_KEYS)
    if fv.extra_layers != "all":
        chosen = SETTINGS_BLOCKS.layers if fv.extra_layers == "blocks" else fv.extra_layers
        settings["extra_layers"] = [layer.name for layer in select_layers(chosen)]
    return settings


def atlas_layout_files(wildcards):
    """One layout file per atlas layer (waits for the `layers` checkpoint)."""
    return [str(RUN.atlas_layout(layer.name)) for layer in select_atlas_layers(SETTINGS_ATLAS.layers)]


def atlas_icon_files(wildcards):
    """The icon files of every atlas layer: each level's cells in ranges of
    `atlas.cells_per_job` (waits for each layer's `atlas_layout` checkpoint)."""
    from pipeline.store.atlas import AtlasStore

    step = SETTINGS_ATLAS.cells_per_job
    files = []
    for layer in select_atlas_layers(SETTINGS_ATLAS.layers):
        layout = checkpoints.atlas_layout.get(layer=layer.name).output[0]
        with AtlasStore(layout) as store:
            counts = store.cell_counts(layer.name)
        files += [str(RUN.atlas_icons(layer.name, level, start, min(start + step, count)))
                  for level, count in counts.items() for start in range(0, count, step)]
    return files


def blocks_image_files(wildcards):
    """One file per featured image (waits for the checkpoint)."""
    count = len(read_listing(checkpoints.blocks_images.get().output[0]))
    return [str(RUN.blocks_image(i)) for i in range(count)]


def circuits_chunks():
    """The extracted layers but the first (each has circuits from the layer before it), in
    runs of `circuits.layers_per_job` (waits for the `layers` checkpoint)."""
    names = [layer.name for layer in select_layers(SETTINGS_EXTRACT.layers)[1:]]
    step = SETTINGS_CIRCUITS.layers_per_job
    return [names[i:i + step] for i in range(0, len(names), step)]


def circuits_layer_files(wildcards):
    """One file per chunk of layers, named by its first layer."""
    return [str(RUN.circuits_part(chunk[0])) for chunk in circuits_chunks()]


def circuits_chunk(wildcards):
    """The layers of the circuits job named by its first layer."""
    for chunk in circuits_chunks():
        if chunk[0] == wildcards.layer:
            return chunk
    raise ValueError(f"no circuits job starts at layer {wildcards.layer!r}")


# Resume safety (docs/CLUSTER.md), in the main process only (not in every cluster job):
# * the locks a killed Snakemake left are removed when no live run holds them, so the
#   same command simply runs again (no `snakemake --unlock` first);
# * a store that is not whole (a copy cut short, a disk fault) is renamed to
#   <name>.incomplete before jobs are planned, so the job that wrote it runs again
#   instead of a merge reading it. Even a dry run does this (Snakemake does not tell the
#   Snakefile about -n); nothing is lost, the file was unusable.
if workflow.is_main_process:
    from snakemake.logging import logger
    from pipeline.runtime import clear_stale_snakemake_locks
    from pipeline.store import set_aside_incomplete_stores

    if clear_stale_snakemake_locks():
        logger.warning("removed the locks of an earlier Snakemake run that was killed")

    for _path, _why in set_aside_incomplete_stores(RUN_DIR):
        logger.warning(f"{_path}: incomplete store ({_why}); renamed to "
                       f"{_path.name}.incomplete so that its job runs again")
