"""The execution profiles: valid for Snakemake 9, and naming rules that exist."""

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.workflow import REPO, run_workflow, tiny_config

PROFILES = REPO / "workflow" / "profiles"

TINY_CONFIG = tiny_config()
CHECKPOINTS = [
    "results/tiny/model/layers.json",
    "results/tiny/dataset/images.json",
    "results/tiny/blocks/images.json",
]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` (its own .snakemake and results)."""
    return run_workflow(workdir, *args, check=check, timeout=300)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    return tmp_path


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def workflow_rules(workdir: Path) -> set[str]:
    return set(snakemake(workdir, "--list-rules").stdout.split())


def test_slurm_profile_passes_a_dry_run(workdir):
    # Run the checkpoints first (cheap), so that the dry run plans the shard jobs behind them.
    snakemake(workdir, "--cores", "1", *CHECKPOINTS)
    out = snakemake(workdir, "-n", "--profile", str(PROFILES / "slurm")).stdout
    slurm = profile("slurm")
    assert "slurm_partition=<CPU_PARTITION>" in out
    counts = job_counts(out)
    # The jobs behind the checkpoints are planned.
    assert counts.get("extract_shard") == 2 and counts.get("blocks_image", 0) >= 2, out
    for rule, resources in slurm["set-resources"].items():
        if counts.get(rule):
            assert f"slurm_partition={resources['slurm_partition']}" in out
            assert "gpu=1" in out and "gpu_model=<GPU_MODEL>" in out
    for rule in slurm["slurm-array-jobs"].split(","):
        assert counts.get(rule, 0) <= slurm["jobs"], f"{rule}: more shards than the jobs cap"


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The "Job stats" table of a dry run: rule -> number of jobs."""
    lines = dry_run_output.split("Job stats:")[1].splitlines()
    counts = {}
    for line in lines[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_slurm_profile_names_only_rules_that_exist(workdir):
    slurm = profile("slurm")
    rules = workflow_rules(workdir)
    named = set(slurm["set-resources"]) | set(slurm["slurm-array-jobs"].split(","))
    assert named <= rules, f"profile names rules the workflow lacks: {sorted(named - rules)}"


def test_slurm_profile_gives_gpu_rules_a_gpu_and_never_a_cpu_count_that_hides_it():
    slurm = profile("slurm")
    # cpus_per_task beats cpus_per_gpu in the plugin: as a default it would apply to GPU jobs.
    assert "cpus_per_task" not in slurm["default-resources"]
    for rule, resources in slurm["set-resources"].items():
        assert resources["gpu"] == 1 and resources["gpu_model"], rule
    assert slurm["executor"] == "slurm"
    # Array mode stalls when the jobs cap hands the plugin only part of a rule's ready
    # shards (plugin issue 473): the cap must cover a whole array.
    assert slurm["jobs"] >= slurm["slurm-array-limit"]


def test_local_profile_passes_a_dry_run_and_caps_gpu_jobs(workdir):
    local = profile("local")
    assert local["resources"] == {"gpu": 1} and local["scheduler"] == "greedy"
    out = snakemake(workdir, "-n", "--profile", str(PROFILES / "local")).stdout
    assert "layers" in out
