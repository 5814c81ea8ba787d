# Circuits between channels of consecutive extracted layers (docs/STORE.md, "Circuits store"):
#   one circuits_layer job per `circuits.layers_per_job` consecutive extracted layers that
#   have a previous one (their top examples from activations.h5), named by the first
#   -> circuits_merge: results/<run>/circuits.h5.


rule circuits_layer:
    input:
        activations=str(RUN.activations),
        layers=checked_layers_json(SETTINGS_EXTRACT.layers),
    output:
        str(RUN.circuits_part("{layer}")),
    log:
        str(RUN.log("circuits_layer", "{layer}")),
    benchmark:
        str(RUN.benchmark("circuits_layer", "{layer}"))
    params:
        model=SETTINGS_MODEL.to_dict(),
        settings=SETTINGS_CIRCUITS.subset(CircuitsSettings.LAYER_KEYS),
        layers=circuits_chunk,
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        CONDA_ENV
    script:
        "../scripts/circuits_layer.py"


rule circuits_merge:
    input:
        # The activations store names the chain of layers (and the first, which has no file).
        activations=str(RUN.activations),
        layers=circuits_layer_files,
    output:
        str(RUN.circuits),
    log:
        str(RUN.log("circuits_merge", "circuits_merge")),
    params:
        settings=SETTINGS_CIRCUITS.subset(CircuitsSettings.LAYER_KEYS),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/circuits_merge.py"


CIRCUITS_TARGETS = (
    [str(RUN.circuits)]
    if config["circuits"]["enabled"] and config["extract"]["enabled"]
    else []
)
