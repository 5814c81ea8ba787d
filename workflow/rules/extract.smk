# Dataset-wide activations and attributions (issue 4):
#   list_images (checkpoint) -> one extract_shard job per `images_per_shard` images
#   -> reduce_partial per shard -> reduce_merge -> shard_examples per shard
#   -> reduce_activations: results/<run>/activations.h5 (layout: docs/STORE.md).


checkpoint list_images:
    # Cheap: lists the source without decoding; bad files are found (and kept out) later.
    output:
        str(RUN.dataset_listing),
    log:
        str(RUN.log("list_images", "list_images")),
    params:
        settings=SETTINGS_DATASET.to_dict(),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_list.py"


rule extract_shard:
    input:
        images=str(RUN.dataset_listing),
        layers=checked_layers_json(SETTINGS_EXTRACT.layers),
    output:
        str(RUN.extract_shard("{start}", "{stop}")),
    log:
        str(RUN.log("extract_shard", "{start}-{stop}")),
    benchmark:
        str(RUN.benchmark("extract_shard", "{start}-{stop}"))
    params:
        model=SETTINGS_MODEL.to_dict(),
        settings=SETTINGS_EXTRACT.subset(ExtractSettings.SHARD_KEYS),
        # The activation atlas's samples (layers and sampling keys; None when disabled).
        atlas=atlas_sampling,
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
        # batch_size, num_workers: speed only, so resources, not params (see common.smk).
        **SETTINGS_EXTRACT.subset(ExtractSettings.SPEED_KEYS),
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_shard.py"


# The reduction, map-reduce (pipeline/extract/reduce_job.py): a partial per shard, one merge
# whose cost depends on shards x channels, not images, then per shard its histogram counts
# and example crops, and the store.
rule reduce_partial:
    input:
        str(RUN.extract_shard("{start}", "{stop}")),
    output:
        str(RUN.extract_file("partials", "{start}", "{stop}")),
    log:
        str(RUN.log("reduce_partial", "{start}-{stop}")),
    benchmark:
        str(RUN.benchmark("reduce_partial", "{start}-{stop}"))
    params:
        settings=SETTINGS_EXTRACT.subset(ExtractSettings.PARTIAL_KEYS),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_partial.py"


rule reduce_merge:
    input:
        shards=extract_shard_files,
        partials=extract_partial_files,
        layers=checked_layers_json(SETTINGS_EXTRACT.layers),
    output:
        str(RUN.extract_merged),
    log:
        str(RUN.log("reduce_merge", "reduce_merge")),
    benchmark:
        str(RUN.benchmark("reduce_merge"))
    params:
        # The model only gives the receptive fields: CPU is enough, wherever the run's GPUs are.
        model=SETTINGS_MODEL.on("cpu").to_dict(),
        settings=SETTINGS_EXTRACT.subset(ExtractSettings.REDUCE_KEYS),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_merge.py"


rule shard_examples:
    input:
        shard=str(RUN.extract_shard("{start}", "{stop}")),
        merged=str(RUN.extract_merged),
    output:
        str(RUN.extract_file("examples", "{start}", "{stop}")),
    log:
        str(RUN.log("shard_examples", "{start}-{stop}")),
    benchmark:
        str(RUN.benchmark("shard_examples", "{start}-{stop}"))
    params:
        # On the run's device: the activation maps run each example image through the model.
        model=SETTINGS_MODEL.to_dict(),
        settings=SETTINGS_EXTRACT.subset(ExtractSettings.REDUCE_KEYS),
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
        **SETTINGS_EXTRACT.subset(ExtractSettings.SPEED_KEYS),
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_examples.py"


rule reduce_activations:
    input:
        shards=extract_shard_files,
        merged=str(RUN.extract_merged),
        examples=extract_examples_files,
        # A user's class hierarchy file: editing it re-labels (labels.hierarchy).
        hierarchy=[SETTINGS_LABELS.hierarchy_file] if SETTINGS_LABELS.hierarchy_file else [],
    output:
        str(RUN.activations),
    log:
        str(RUN.log("reduce_activations", "reduce_activations")),
    benchmark:
        str(RUN.benchmark("reduce_activations"))
    params:
        settings=SETTINGS_EXTRACT.subset(ExtractSettings.REDUCE_KEYS),
        labels=SETTINGS_LABELS.to_dict(),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_reduce.py"


EXTRACT_TARGETS = [str(RUN.activations)] if config["extract"]["enabled"] else []
