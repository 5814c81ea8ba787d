# The compare workflow (README "Compare models"): two or more runs over the same images,
# compared into results/<run>/compare.h5 (docs/STORE.md, "Comparison store").
#
#   snakemake --snakefile workflow/compare.smk --configfile workflow/config/compare.yaml
#
# The member runs are normal runs (compare.runs: their config files), made by the normal
# workflow with their own configs first (`make compare` runs them, then this), so that each
# keeps every rerun trigger of its own; here one rule reads their activations.h5.
import yaml
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from pipeline.compare import CompareSettings
from pipeline.store import RunFiles

min_version("9.0")


configfile: "workflow/config/compare.yaml"


validate(config, "config/compare.schema.yaml")

SETTINGS_COMPARE = CompareSettings.from_config(config["compare"])
COMPARE = RunFiles(f"{config['results_dir']}/{config['run']}")


def member_activations(config_file):
    """A member run's activations store, from its config (results_dir and run as the
    normal workflow resolves them: default.yaml's, then the member's own)."""
    member = {**yaml.safe_load(Path("workflow/config/default.yaml").read_text()), "results_dir": "results"}
    member.update(yaml.safe_load(Path(config_file).read_text()) or {})
    store = RunFiles(f"{member['results_dir']}/{member['run']}").activations
    if not store.exists() and workflow.is_main_process:
        raise WorkflowError(
            f"{store}: the member run of {config_file} has no activations store yet; run it "
            f"first (snakemake --profile workflow/profiles/local --configfile {config_file}), "
            "or run `make compare`, which runs every member and then the comparison"
        )
    return str(store)


MEMBER_STORES = [member_activations(path) for path in SETTINGS_COMPARE.runs]


rule all:
    input:
        str(COMPARE.compare),
    default_target: True


rule compare:
    input:
        MEMBER_STORES,
    output:
        str(COMPARE.compare),
    log:
        str(COMPARE.log("compare", "compare")),
    benchmark:
        str(COMPARE.benchmark("compare"))
    params:
        settings=SETTINGS_COMPARE.subset(CompareSettings.COMPARE_KEYS),
    threads: workflow.cores
    conda:
        "envs/model-atlas.yaml"
    script:
        "scripts/compare.py"
