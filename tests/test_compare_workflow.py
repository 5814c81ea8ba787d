"""End to end: two tiny member runs made by the normal workflow, then workflow/compare.smk
(the compare rule and the comparison site), then a dry run that finds nothing to do."""

import subprocess
import sys

import pytest
import yaml

from pipeline.store.compare import open_comparison
from tests.helpers.workflow import REPO, run_workflow, tiny_config, workflow_env, write_config


def _member(tmp_path, run: str, featurevis: bool):
    config = tiny_config(
        run=run,
        dataset={"kind": "bundled", "max_images": 8},
        featurevis={**tiny_config()["featurevis"], "enabled": featurevis, "layers": ["conv2"]},
        blocks={"enabled": False},
        circuits={"enabled": False},
        atlas={"enabled": False},
        scores={"enabled": False},
        site={"enabled": False},
    )
    # Each member runs in the compare run's folder (its results/ is the members' results_dir),
    # from config.yaml there; the compare config names a copy.
    path = tmp_path / f"member-{run}.yaml"
    path.write_text(yaml.safe_dump(config))
    write_config(tmp_path, config)
    targets = [f"results/{run}/activations.h5"] + ([f"results/{run}/featurevis.h5"] if featurevis else [])
    run_workflow(tmp_path, "--cores", "2", *targets)
    return path


def _compare(tmp_path, *args):
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "workflow/compare.smk"),
        "-d",
        str(tmp_path),
    ]
    command += ["--configfile", str(tmp_path / "compare.yaml"), "--cores", "2", *args]
    proc = subprocess.run(command, cwd=REPO, env=workflow_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.mark.slow
def test_the_compare_workflow_writes_the_store_and_its_site_and_resumes(tmp_path):
    members = [_member(tmp_path, "a", featurevis=True), _member(tmp_path, "b", featurevis=False)]
    compare = {"run": "a-vs-b", "compare": {"runs": [str(p) for p in members], "batch_size": 4}}
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump(compare))
    _compare(tmp_path)
    out = tmp_path / "results" / "a-vs-b"
    with open_comparison(out) as store:
        assert store.pairs() == [("a", "b")]
        pairs = store.layer_pairs()
    assert ("conv2", "conv2") in pairs
    site = out / "site"
    index = (site / "index.html").read_text()
    assert 'href="pairs/a/b/conv2--conv2.html"' in index
    pair = (site / "pairs/a/b/conv2--conv2.html").read_text()
    assert "feature visualization of a conv2 channel 0" in pair
    assert "b conv2 has no feature visualizations in its run" in pair
    assert (site / "channels/b/conv1/0.html").is_file()
    dry = _compare(tmp_path, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
