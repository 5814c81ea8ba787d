# Activation atlases (issue 15; docs/STORE.md, "Atlas store"). The vectors are sampled
# inside the extraction pass (extract_shard's `atlas` params); then, per atlas layer:
#   atlas_layout (checkpoint: UMAP, grids, cells, examples) -> atlas/<layer>/layout.h5
#   atlas_render, one job per `atlas.cells_per_job` cells of a level -> atlas/<layer>/icons/...
# and atlas_merge -> results/<run>/atlas.h5.


checkpoint atlas_layout:
    input:
        activations=run_path("activations.h5"),
        layers=run_path("model", "layers.json"),
    output:
        run_path("atlas", "{layer}", "layout.h5"),
    log:
        log_path("atlas_layout", "{layer}"),
    benchmark:
        run_path("benchmarks", "atlas_layout", "{layer}.tsv")
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
        run_path("atlas", "{layer}", "layout.h5"),
    output:
        run_path("atlas", "{layer}", "icons", "{level}", "{start}-{stop}.h5"),
    wildcard_constraints:
        level=r"\d+",
    log:
        log_path("atlas_render", "{layer}", "{level}", "{start}-{stop}"),
    benchmark:
        run_path("benchmarks", "atlas_render", "{layer}", "{level}", "{start}-{stop}.tsv")
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
        run_path("atlas.h5"),
    log:
        log_path("atlas_merge", "atlas_merge"),
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/atlas_merge.py"


ATLAS_TARGETS = [run_path("atlas.h5")] if ATLAS_ENABLED else []
