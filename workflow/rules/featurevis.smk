# Feature visualization (issue 3): one job per (layer, channel range), then one store.
#
#   results/<run>/featurevis/shards/<layer>/<start>-<stop>.h5   one shard per job
#   results/<run>/featurevis.h5                                 the merged store
#
# Shards are planned from the `layers` checkpoint (featurevis_shard_files in common.smk).
# Layout of both files: docs/STORE.md, "Feature visualization store".


rule featurevis_shard:
    input:
        checked_layers_json(SETTINGS_FEATUREVIS.layers),
    output:
        str(RUN.featurevis_shard("{layer}", "{start}", "{stop}")),
    log:
        str(RUN.log("featurevis_shard", "{layer}", "{start}-{stop}")),
    benchmark:
        str(RUN.benchmark("featurevis_shard", "{layer}", "{start}-{stop}"))
    params:
        model=SETTINGS_MODEL.to_dict(),
        # The channel selection, and what decides each channel's images; not the layers
        # or channels_per_job (the shard's layer and range are in its name).
        settings=featurevis_render_settings,
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        CONDA_ENV
    script:
        "../scripts/featurevis_shard.py"


rule featurevis_merge:
    input:
        featurevis_shard_files,
    output:
        str(RUN.featurevis),
    log:
        str(RUN.log("featurevis_merge", "featurevis_merge")),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/featurevis_merge.py"


FEATUREVIS_TARGETS = [str(RUN.featurevis)] if config["featurevis"]["enabled"] else []
