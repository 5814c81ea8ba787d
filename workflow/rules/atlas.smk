# Activation atlases (issue 15; docs/STORE.md, "Atlas store"). The vectors are sampled
# inside the extraction pass (extract_shard's `atlas` params); then, per atlas layer:
#   atlas_layout (checkpoint: UMAP, grids, cells, examples) -> atlas/<layer>/layout.h5
#   atlas_render, one job per `atlas.cells_per_job` cells of a level -> atlas/<layer>/icons/...
# and atlas_merge -> results/<run>/atlas.h5.


checkpoint atlas_layout:
    input:
        activations=str(RUN.activations),
        layers=str(RUN.layers_json),
    output:
        str(RUN.atlas_layout("{layer}")),
    log:
        str(RUN.log("atlas_layout", "{layer}")),
    benchmark:
        str(RUN.benchmark("atlas_layout", "{layer}"))
    params:
        model=SETTINGS_MODEL.to_dict(),
        settings=SETTINGS_ATLAS.subset(AtlasSettings.LAYOUT_KEYS),
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        CONDA_ENV
    script:
        "../scripts/atlas_layout.py"


rule atlas_render:
    input:
        str(RUN.atlas_layout("{layer}")),
    output:
        str(RUN.atlas_icons("{layer}", "{level}", "{start}", "{stop}")),
    wildcard_constraints:
        level=r"\d+",
    log:
        str(RUN.log("atlas_render", "{layer}", "{level}", "{start}-{stop}")),
    benchmark:
        str(RUN.benchmark("atlas_render", "{layer}", "{level}", "{start}-{stop}"))
    params:
        model=SETTINGS_MODEL.to_dict(),
        settings=SETTINGS_ATLAS.subset(AtlasSettings.ICON_KEYS),
        # The run's preset and schedule overrides decide the icons' optimiser, as they do
        # the channels'; the icon files record exactly these keys.
        featurevis=SETTINGS_FEATUREVIS.subset(FeaturevisSettings.ICON_KEYS),
    threads: config["threads"]
    resources:
        gpu=GPU_JOB,
    conda:
        CONDA_ENV
    script:
        "../scripts/atlas_render.py"


rule atlas_merge:
    input:
        layouts=atlas_layout_files,
        icons=atlas_icon_files,
    output:
        str(RUN.atlas),
    log:
        str(RUN.log("atlas_merge", "atlas_merge")),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/atlas_merge.py"


ATLAS_TARGETS = [str(RUN.atlas)] if ATLAS_ENABLED else []
