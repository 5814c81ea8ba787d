# Per-image Building Blocks (issue 5):
#   blocks_images (checkpoint: the featured images) -> one blocks_image job per image
#   -> blocks_merge: results/<run>/blocks.h5 (layout: docs/STORE.md, "Building Blocks store").
import json
from pathlib import Path

BLOCKS = config["blocks"]
BLOCKS_GPU = 1 if config["device"].startswith("cuda") else 0


checkpoint blocks_images:
    # Cheap: lists the featured images without decoding them.
    output:
        run_path("blocks", "images.json"),
    log:
        log_path("blocks_images", "blocks_images"),
    params:
        images=BLOCKS["images"],
    threads: 1
    script:
        "../scripts/blocks_list.py"


def blocks_layers_json(wildcards):
    """layers.json, after checking that every configured layer exists (clear error if not)."""
    select_layers(BLOCKS["layers"])
    return run_path("model", "layers.json")


def blocks_image_files(wildcards):
    """One file per featured image (waits for the checkpoint)."""
    listing = json.loads(Path(checkpoints.blocks_images.get().output[0]).read_text())
    return [run_path("blocks", "images", f"{i}.h5") for i in range(len(listing["records"]))]


rule blocks_image:
    input:
        images=run_path("blocks", "images.json"),
        layers=blocks_layers_json,
    output:
        run_path("blocks", "images", "{index}.h5"),
    wildcard_constraints:
        index=r"\d+",
    log:
        log_path("blocks_image", "{index}"),
    benchmark:
        run_path("benchmarks", "blocks_image", "{index}.tsv")
    params:
        model=MODEL_PARAMS,
        device=config["device"],
        blocks=BLOCKS,
    threads: config["threads"]
    resources:
        gpu=BLOCKS_GPU,
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
    script:
        "../scripts/blocks_merge.py"


BLOCKS_TARGETS = [run_path("blocks.h5")] if BLOCKS["enabled"] else []
