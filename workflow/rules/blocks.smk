# Per-image Building Blocks (issue 5):
#   blocks_images (checkpoint: the featured images) -> one blocks_image job per image
#   -> blocks_merge: results/<run>/blocks.h5 (layout: docs/STORE.md, "Building Blocks store").


checkpoint blocks_images:
    # Cheap: lists the featured images without decoding them.
    output:
        str(RUN.featured_listing),
    log:
        str(RUN.log("blocks_images", "blocks_images")),
    params:
        settings=SETTINGS_BLOCKS.subset(BlocksSettings.LIST_KEYS),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/blocks_list.py"


rule blocks_image:
    input:
        images=str(RUN.featured_listing),
        layers=checked_layers_json(SETTINGS_BLOCKS.layers),
    output:
        str(RUN.blocks_image("{index}")),
    wildcard_constraints:
        index=r"\d+",
    log:
        str(RUN.log("blocks_image", "{index}")),
    benchmark:
        str(RUN.benchmark("blocks_image", "{index}"))
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
        str(RUN.blocks),
    log:
        str(RUN.log("blocks_merge", "blocks_merge")),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/blocks_merge.py"


BLOCKS_TARGETS = [str(RUN.blocks)] if config["blocks"]["enabled"] else []
