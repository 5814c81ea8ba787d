# Per-unit trust scores (docs/STORE.md, "Scores store"; issue 26): one job reads
# activations.h5 and featurevis.h5, runs the model on the top examples' crops and the
# visualizations only, and writes results/<run>/scores.h5 (one part per layer in
# scores/parts/, kept when a killed job runs again). The site reads it for its scorecards.


rule scores:
    input:
        activations=str(RUN.activations),
        # Without feature visualizations the visualization scores are NaN.
        featurevis=[str(RUN.featurevis)] if config["featurevis"]["enabled"] else [],
    output:
        str(RUN.scores),
    log:
        str(RUN.log("scores", "scores")),
    benchmark:
        str(RUN.benchmark("scores"))
    params:
        model=SETTINGS_MODEL.to_dict(),
        settings=SETTINGS_SCORES.subset(ScoresSettings.RECORD_KEYS),
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
        # batch_size: speed only, so a resource, not a param (see common.smk).
        **SETTINGS_SCORES.subset(ScoresSettings.SPEED_KEYS),
    conda:
        CONDA_ENV
    script:
        "../scripts/scores.py"


SCORES_TARGETS = (
    [str(RUN.scores)]
    if config["scores"]["enabled"] and config["extract"]["enabled"]
    else []
)
