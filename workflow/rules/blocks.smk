# Per-image Building Blocks (issue 5):
#   blocks_images (checkpoint: the featured images) -> one blocks_image job per image
#   -> blocks_merge: results/<run>/blocks.h5 (layout: docs/STORE.md, "Building Blocks store").


checkpoint blocks_images:
    # Cheap: lists the featured images without decoding them.
    output:
        run_path("blocks", "images.json"),
    log:
        log_path("blocks_images", "blocks_images"),
    params:
        settings=SETTINGS_BLOCKS.subset(BlocksSettings.LIST_KEYS),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/blocks_list.py"


rule blocks_image:
    input:
        images=run_path("blocks", "images.json"),
        layers=checked_layers_json(SETTINGS_BLOCKS.layers),
    output:
        run_path("blocks", "images", "{index}.h5"),
    wildcard_constraints:
        index=r"\d+",
    log:
        log_path("blocks_image", "{index}"),
    benchmark:
        run_path("benchmarks", "blocks_image", "{index}.tsv")
    params:
        model=SETTINGS_MODEL.to_dict(),
        # Everything of the section but the image list (each job has its image).
        settings=SETTINGS_BLOCKS.per_image(),
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        CONDA_ENV
    script:
        "../scripts/blocks_image.py"


rule blocks_merge:
    input:
        blocks_image_files,
    output:
        run_path("blocks.h5"),
    log:
        log_path("blocks_merge", "blocks_merge"),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/blocks_merge.py"


BLOCKS_TARGETS = [run_path("blocks.h5")] if config["blocks"]["enabled"] else []
