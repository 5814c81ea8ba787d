"""End to end: the `scores` rule on the tiny workflow config, then Results.scores and the CLI."""

import json
import subprocess
import sys

import pytest

from pipeline.query import open_results
from pipeline.scores import SCORE_KEYS
from tests.helpers.workflow import REPO, run_workflow, tiny_config, workflow_env, write_config


@pytest.mark.slow
def test_the_scores_rule_writes_every_extracted_layer_and_resumes(tmp_path):
    config = tiny_config(
        blocks={"enabled": False},
        circuits={"enabled": False},
        atlas={"enabled": False},
        site={"enabled": False},
    )
    write_config(tmp_path, config)
    run_workflow(tmp_path, "--cores", "2", "results/tiny/scores.h5")
    run = tmp_path / "results" / "tiny"
    with open_results(run) as results:
        table = results.scores("conv2", sort="strength")
        assert [row["channel"] for row in results.scores("conv2")["rows"]] == [0, 1]
        assert {c["key"] for c in table["columns"]} == set(SCORE_KEYS)
        assert table["path_layers"] == ["conv1"] and table["embedding_layer"] == "conv2"
        row = table["rows"][0]
        assert row["image_rank"] in (1, 2) and row["fires_images"] is not None
        assert row["label_precision"] is None  # the bundled photos have no true labels
        assert results.scores("conv1")["path_layers"] == []
    assert (run / "scores" / "parts" / "conv1.h5").is_file()
    # Nothing changed: nothing runs again.
    dry = run_workflow(tmp_path, "--cores", "1", "-n", "results/tiny/scores.h5")
    assert (
        "scores" not in dry.stdout.split("Job stats:")[-1] or "Nothing to be done" in dry.stdout + dry.stderr
    )
    printed = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "query", str(run), "scores", "conv2", "--json"],
        cwd=REPO,
        env=workflow_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(printed.stdout)["layer"] == "conv2"
