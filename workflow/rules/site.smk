# The static atlas site (issue 6): results/<run>/site/ from the stores alone (no torch).
# Included after the stages it reads, so their target lists are known; a disabled stage
# simply leaves its part of the site out.
SITE = config["site"]


rule export_site:
    input:
        # The first input names the run folder (the script reads every store from it).
        run_path("model", "layers.json"),
        FEATUREVIS_TARGETS,
        EXTRACT_TARGETS,
        BLOCKS_TARGETS,
        CIRCUITS_TARGETS,
        ATLAS_TARGETS,
    output:
        directory(run_path("site")),
    log:
        log_path("export_site", "export_site"),
    benchmark:
        run_path("benchmarks", "export_site.tsv")
    params:
        site=SITE,
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/export_site.py"


SITE_TARGETS = [run_path("site")] if SITE["enabled"] else []
