# Dataset-wide activations and attributions (issue 4):
#   list_images (checkpoint) -> one extract_shard job per `images_per_shard` images
#   -> reduce_partial per shard -> reduce_merge -> shard_examples per shard
#   -> reduce_activations: results/<run>/activations.h5 (layout: docs/STORE.md).


checkpoint list_images:
    # Cheap: lists the source without decoding; bad files are found (and kept out) later.
    output:
        run_path("dataset", "images.json"),
    log:
        log_path("list_images", "list_images"),
    params:
        settings=SETTINGS_DATASET.to_dict(),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_list.py"


rule extract_shard:
    input:
        images=run_path("dataset", "images.json"),
        layers=checked_layers_json(SETTINGS_EXTRACT.layers),
    output:
        run_path("extract", "shards", "{start}-{stop}.h5"),
    log:
        log_path("extract_shard", "{start}-{stop}"),
    benchmark:
        run_path("benchmarks", "extract_shard", "{start}-{stop}.tsv")
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
        run_path("extract", "shards", "{start}-{stop}.h5"),
    output:
        run_path("extract", "partials", "{start}-{stop}.h5"),
    log:
        log_path("reduce_partial", "{start}-{stop}"),
    benchmark:
        run_path("benchmarks", "reduce_partial", "{start}-{stop}.tsv")
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
        run_path("extract", "merged.h5"),
    log:
        log_path("reduce_merge", "reduce_merge"),
    benchmark:
        run_path("benchmarks", "reduce_merge.tsv")
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
        shard=run_path("extract", "shards", "{start}-{stop}.h5"),
        merged=run_path("extract", "merged.h5"),
    output:
        run_path("extract", "examples", "{start}-{stop}.h5"),
    log:
        log_path("shard_examples", "{start}-{stop}"),
    benchmark:
        run_path("benchmarks", "shard_examples", "{start}-{stop}.tsv")
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
        merged=run_path("extract", "merged.h5"),
        examples=extract_examples_files,
    output:
        run_path("activations.h5"),
    log:
        log_path("reduce_activations", "reduce_activations"),
    benchmark:
        run_path("benchmarks", "reduce_activations.tsv")
    params:
        settings=SETTINGS_EXTRACT.subset(ExtractSettings.REDUCE_KEYS),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_reduce.py"


EXTRACT_TARGETS = [run_path("activations.h5")] if config["extract"]["enabled"] else []
