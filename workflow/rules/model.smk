# Layer discovery: a checkpoint, so that later stages can shard by layer and channel.


checkpoint layers:
    output:
        run_path("model", "layers.json"),
    log:
        log_path("layers", "layers"),
    params:
        model=MODEL_PARAMS,
        device=config["device"],
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/discover_layers.py"
