# model-atlas workflow: thin entry point. Stages live in workflow/rules/*.smk;
# the configuration keys are documented in workflow/config/schema.yaml.
from snakemake.utils import min_version, validate

min_version("9.0")

configfile: "workflow/config/default.yaml"


validate(config, "workflow/config/schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/featurevis.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/blocks.smk"
include: "workflow/rules/circuits.smk"
include: "workflow/rules/atlas.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/site.smk"


rule all:
    input:
        str(RUN.layers_json),
        FEATUREVIS_TARGETS,
        EXTRACT_TARGETS,
        BLOCKS_TARGETS,
        CIRCUITS_TARGETS,
        ATLAS_TARGETS,
        SCORES_TARGETS,
        SITE_TARGETS,
    default_target: True
