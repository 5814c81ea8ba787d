# The static atlas site (issue 6): results/<run>/site/ from the stores alone (no torch).
# Included after the stages it reads, so their target lists are known; a disabled stage
# simply leaves its part of the site out.
SITE = config["site"]


rule export_site:
    input:
        # The first input names the run folder (the script reads every store from it).
        str(RUN.layers_json),
        FEATUREVIS_TARGETS,
        EXTRACT_TARGETS,
        BLOCKS_TARGETS,
        CIRCUITS_TARGETS,
        ATLAS_TARGETS,
        # The channel pages' scorecards (the reader treats scores.h5 as optional, as the rest).
        SCORES_TARGETS,
    output:
        directory(str(RUN.site)),
    log:
        str(RUN.log("export_site", "export_site")),
    benchmark:
        str(RUN.benchmark("export_site"))
    params:
        site=SITE,
    threads: 1
    conda:
        CONDA_ENV
    script:
        "../scripts/export_site.py"


SITE_TARGETS = [str(RUN.site)] if SITE["enabled"] else []
