"""The workflow's config is validated before any job runs, and errors name the key."""

import subprocess
import sys

import pytest

from tests.helpers.workflow import REPO


def _dry_run(tmp_path, *config):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            f"{REPO}/Snakefile",
            "--directory",
            REPO,
            "--configfile",
            f"{REPO}/workflow/config/default.yaml",
            "--cores",
            "1",
            "-n",
            "--config",
            f"results_dir={tmp_path}",
            *config,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    "override, key, value",
    [
        ("run=bad name!", "'run'", "bad name!"),
        ("device=gpu0", "'device'", "gpu0"),
        ("threads=0", "'threads'", "0"),
    ],
)
def test_bad_config_value_fails_before_any_job_naming_the_key(tmp_path, override, key, value):
    result = _dry_run(tmp_path, override)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Error validating config" in output
    assert f"instance[{key}]" in output and value in output
    assert list(tmp_path.iterdir()) == []  # no job ran, nothing written


def test_a_missing_hierarchy_file_stops_the_run_before_any_job_naming_the_key(tmp_path):
    result = _dry_run(tmp_path, f"labels={{'hierarchy': '{tmp_path}/nowhere.json'}}")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "labels.hierarchy" in output and "nowhere.json: class hierarchy file not found" in output
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_label_factor_is_refused_by_the_schema(tmp_path):
    result = _dry_run(tmp_path, "labels={'rule': 'lift*size'}")
    assert result.returncode != 0 and "lift*size" in result.stdout + result.stderr


def test_unknown_key_is_rejected(tmp_path):
    result = _dry_run(tmp_path, "featurvis={'steps': 3}")
    assert result.returncode != 0
    assert "featurvis" in result.stdout + result.stderr


def test_default_config_passes_validation(tmp_path):
    result = _dry_run(tmp_path)
    assert result.returncode == 0, result.stderr


def test_snakemake_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--cores", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _leaf_keys(schema, path=""):
    """Every configurable key of the schema, with its sub-schema."""
    for name, sub in schema.get("properties", {}).items():
        key = f"{path}.{name}" if path else name
        yield key, sub
        if sub.get("type") == "object":
            yield from _leaf_keys(sub, key)


def test_every_config_key_has_a_description_and_a_default():
    import yaml

    schema = yaml.safe_load(open(f"{REPO}/workflow/config/schema.yaml"))
    keys = dict(_leaf_keys(schema))
    assert {"run", "model.name", "featurevis.steps", "extract.top_k", "blocks.layers", "site.enabled"} <= set(
        keys
    )
    missing = [k for k, sub in keys.items() if not sub.get("description") or "default" not in sub]
    assert missing == []
