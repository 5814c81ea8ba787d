# Layer discovery: a checkpoint, so that later stages can shard by layer and channel.

# A custom loader's source file, hashed (package.module:function): editing the loader
# makes the run discover its layers again (Snakemake's params rerun trigger). Registered,
# timm and torchvision models have no such param, so their runs' params are unchanged.
LOADER_SOURCE = {"loader_source": SETTINGS_MODEL.loader_source()} if SETTINGS_MODEL.loader_source() else {}


checkpoint layers:
    output:
        str(RUN.layers_json),
    log:
        str(RUN.log("layers", "layers")),
    params:
        # Layer shapes do not depend on the device, and the job runs on a CPU node
        # (no gpu resource), even when the run's device is a GPU.
        model=SETTINGS_MODEL.on("cpu").to_dict(),
        **LOADER_SOURCE,
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/discover_layers.py"
