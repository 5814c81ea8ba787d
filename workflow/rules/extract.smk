# Dataset-wide activations and attributions (issue 4):
#   list_images (checkpoint) -> one extract_shard job per `images_per_shard` images
#   -> reduce_activations: results/<run>/activations.h5 (layout: docs/STORE.md).
EXTRACT = config["extract"]
DATASET = config["dataset"]
EXTRACT_GPU = 1 if config["device"].startswith("cuda") else 0


checkpoint list_images:
    # Cheap: lists the source without decoding; bad files are found (and kept out) later.
    output:
        run_path("dataset", "images.json"),
    log:
        log_path("list_images", "list_images"),
    params:
        dataset=DATASET,
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_list.py"


rule extract_shard:
    input:
        images=run_path("dataset", "images.json"),
        layers=checked_layers_json("extract"),
    output:
        run_path("extract", "shards", "{start}-{stop}.h5"),
    log:
        log_path("extract_shard", "{start}-{stop}"),
    benchmark:
        run_path("benchmarks", "extract_shard", "{start}-{stop}.tsv")
    params:
        model=MODEL_PARAMS,
        device=config["device"],
        dataset=DATASET,
        extract=EXTRACT,
    threads: config["threads"]
    resources:
        gpu=EXTRACT_GPU,
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_shard.py"


rule reduce_activations:
    input:
        shards=extract_shard_files,
        layers=checked_layers_json("extract"),
    output:
        run_path("activations.h5"),
    log:
        log_path("reduce_activations", "reduce_activations"),
    benchmark:
        run_path("benchmarks", "reduce_activations.tsv")
    params:
        model=MODEL_PARAMS,
        extract=EXTRACT,
    threads: config["threads"]
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_reduce.py"


EXTRACT_TARGETS = [run_path("activations.h5")] if EXTRACT["enabled"] else []
