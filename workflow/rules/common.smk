# Shared by every stage: where results go, which layers exist, wildcard rules.
import json
from pathlib import Path

RUN_DIR = f"{config['results_dir']}/{config['run']}"


wildcard_constraints:
    layer=r"[A-Za-z0-9_][A-Za-z0-9_.\-]*",
    start=r"\d+",
    stop=r"\d+",


def run_path(*parts):
    return "/".join([RUN_DIR, *parts])


def log_path(rule_name, *parts):
    return "/".join([RUN_DIR, "logs", rule_name, *parts]) + ".log"


def discovered_layers():
    """The layers.json written by the `layers` checkpoint (waits for it in the DAG)."""
    path = checkpoints.layers.get().output[0]
    return json.loads(Path(path).read_text())


def select_layers(selection):
    """Resolve a config layer selection ("all" or names/aliases) to layer records.

    An unknown name stops the workflow with a message listing the layers that exist.
    """
    info = discovered_layers()
    layers = info["layers"]
    if selection == "all":
        return layers
    by_name = {l["name"]: l for l in layers}
    chosen = []
    for name in selection:
        canonical = info["aliases"].get(name, name)
        if canonical not in by_name:
            raise ValueError(
                f"config: layer {name!r} does not exist in model {info['model']!r}; "
                f"layers: {', '.join(by_name)}")
        chosen.append(canonical)
    return [l for l in layers if l["name"] in chosen]


MODEL_PARAMS = {"name": config["model"]["name"], "weights": config["model"]["weights"]}
