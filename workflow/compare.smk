# The compare workflow (README "Compare models"): two or more runs over the same images,
# compared into results/<run>/compare.h5 (docs/STORE.md, "Comparison store"), and the
# comparison site results/<run>/site/ (docs/FRONTEND.md, "The comparison site").
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


def member_config(config_file):
    """A member run's config as the normal workflow resolves it: default.yaml's keys, then
    the member's own (one level deep, as Snakemake merges --configfile)."""
    defaults = Path(workflow.basedir) / "config" / "default.yaml"
    member = {**yaml.safe_load(defaults.read_text()), "results_dir": "results"}
    for key, value in (yaml.safe_load(Path(config_file).read_text()) or {}).items():
        merged = isinstance(value, dict) and isinstance(member.get(key), dict)
        member[key] = {**member[key], **value} if merged else value
    return member


def member_files(config_file):
    member = member_config(config_file)
    return RunFiles(f"{member['results_dir']}/{member['run']}")


def member_activations(config_file):
    """A member run's activations store (its run must have made it)."""
    store = member_files(config_file).activations
    if not store.exists() and workflow.is_main_process:
        raise WorkflowError(
            f"{store}: the member run of {config_file} has no activations store yet; run it "
            f"first (snakemake --profile workflow/profiles/local --configfile {config_file}), "
            "or run `make compare`, which runs every member and then the comparison"
        )
    return str(store)


MEMBER_STORES = [member_activations(path) for path in SETTINGS_COMPARE.runs]
MEMBER_RUNS = [member_config(path)["run"] for path in SETTINGS_COMPARE.runs]
# The members' feature visualizations, where their configs render any: the comparison
# site shows them (a member without them shows dataset examples only).
MEMBER_FEATUREVIS = [
    str(member_files(path).featurevis)
    for path in SETTINGS_COMPARE.runs
    if member_config(path)["featurevis"].get("enabled", True)
]


rule all:
    input:
        str(COMPARE.compare),
        str(COMPARE.site),
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


rule compare_site:
    """The comparison site (README "Compare models"; docs/FRONTEND.md "The comparison
    site"): the CKA heatmap, a page per matched layer pair and per channel of those layers."""
    input:
        compare=str(COMPARE.compare),
        members=MEMBER_STORES,
        featurevis=MEMBER_FEATUREVIS,
    output:
        directory(str(COMPARE.site)),
    log:
        str(COMPARE.log("compare_site", "compare_site")),
    benchmark:
        str(COMPARE.benchmark("compare_site"))
    params:
        runs=MEMBER_RUNS,
    threads: 1
    conda:
        "envs/model-atlas.yaml"
    script:
        "scripts/compare_site.py"
