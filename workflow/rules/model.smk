# Layer discovery: a checkpoint, so that later stages can shard by layer and channel.


checkpoint layers:
    output:
        str(RUN.layers_json),
    log:
        str(RUN.log("layers", "layers")),
    params:
        # Layer shapes do not depend on the device, and the job runs on a CPU node
        # (no gpu resource), even when the run's device is a GPU.
        model=SETTINGS_MODEL.on("cpu").to_dict(),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/discover_layers.py"
