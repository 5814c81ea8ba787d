"""The ``model-atlas`` command line.

    model-atlas models [--json]                 the registry, and which weights this machine has
    model-atlas layers MODEL [--json]           a model's layers with channels and spatial size
    model-atlas query RESULTS summary [--json]  what a run's stores hold
    model-atlas query RESULTS channel LAYER C   top examples, classes and statistics of a channel
    model-atlas query RESULTS image ID          one image's predictions, activations, blocks
    model-atlas query RESULTS atlas LAYER       a layer's activation atlas: levels, cells, classes
    model-atlas query RESULTS search "dog"      what the site's search box lists, best first
    model-atlas query RESULTS scores LAYER      every channel's trust scores [--sort KEY] [--json]
    model-atlas compare RESULTS [pairs]         a comparison of runs: matched layer pairs in numbers
    model-atlas compare RESULTS cka             the CKA of every layer pair
    model-atlas compare RESULTS matches A B     the unit matches of layer A with layer B [--json]

The workflow itself runs through Snakemake (see the README); this CLI inspects
models and answers questions about finished runs offline.
"""

from __future__ import annotations

import argparse
import json
import sys


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def cmd_models(args) -> int:
    from pipeline.model import model_status

    rows = model_status()
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        mark = "yes" if row["weights_available"] else "no "
        aliases = f" (alias {', '.join(row['aliases'])})" if row["aliases"] else ""
        print(f"{row['name']:<20} trained weights: {mark}  {row['description']}{aliases}")
        print(f"{'':<20} {row['weights']}")
    print(
        "\nAlso: torchvision/NAME, timm/NAME (weights from the local cache or a file), "
        "package.module:function."
    )
    return 0


def cmd_layers(args) -> int:
    from pipeline.model import load_model

    model = load_model(args.model, weights=args.weights, device=args.device)
    layers = [layer.to_dict() for layer in model.layers]
    if args.json:
        _print_json(layers)
        return 0
    print(
        f"{model.name}: {len(layers)} layers, {sum(layer['channels'] for layer in layers)} channels "
        f"at input {model.input_size}x{model.input_size}"
    )
    for layer in layers:
        shape = f"{layer['channels']} x {layer['height']} x {layer['width']}"
        print(f"  {layer['name']:<16} {shape:<18} module {layer['module']}")
    aliases = model.layer_aliases
    if aliases:
        print("aliases: " + ", ".join(f"{a}={n}" for a, n in aliases.items()))
    return 0


def cmd_query(args) -> int:
    from pipeline import query

    return query.run_cli(args)


def cmd_compare(args) -> int:
    from pipeline.compare import report

    return report.run_cli(args)


def _add_compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="a comparison of two or more runs (compare.h5), offline")
    p.add_argument("results", help="a compare run's folder (results/<compare run>) or its compare.h5")
    p.add_argument(
        "what",
        nargs="?",
        default="pairs",
        choices=("pairs", "cka", "matches"),
        help="pairs (default): each pair of runs' matched layer pairs; cka: every layer pair's "
        "CKA; matches LAYER_A LAYER_B: every channel's matches",
    )
    p.add_argument("layers", nargs="*", metavar="LAYER", help="matches: a layer of each run")
    p.add_argument("--runs", nargs=2, metavar=("A", "B"), help="which pair, when the store holds several")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_compare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-atlas",
        description=__doc__.split("\n\n")[0],
        epilog="Run the workflow with snakemake (see README.md); results land in results/<run>/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list registered models and whether their weights are here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("layers", help="list a model's layers (found by a real forward pass)")
    p.add_argument("model", help="registry name, torchvision/NAME, timm/NAME or module:function")
    p.add_argument(
        "--weights",
        default="random",
        help="weights to build the model with: random (default: layer shapes do not "
        "depend on weights, so no trained weights are needed), pretrained, or "
        "a state-dict file",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--json", action="store_true", help="a JSON list of layer objects")
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("query", help="answer questions from a finished run's stores, offline")
    p.add_argument("results", help="a run folder (results/<run>) or a store file")
    qsub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    q = qsub.add_parser("summary", help="model, layers, images, skipped files")
    q.add_argument("--json", action="store_true")
    q = qsub.add_parser("channel", help="one channel: top examples, top classes, statistics")
    q.add_argument("layer", help="layer name (or alias)")
    q.add_argument("channel", type=int, help="channel index")
    q.add_argument("-k", type=int, default=None, help="how many examples/classes (default: all stored)")
    q.add_argument("--json", action="store_true")
    q = qsub.add_parser("image", help="one image: predictions, strongest channels, Building Blocks")
    q.add_argument("image_id", help="image id as listed by `summary`")
    q.add_argument("--json", action="store_true")
    q = qsub.add_parser("atlas", help="a layer's activation atlas: cells per level, largest cells' classes")
    q.add_argument("layer", help="layer name (or alias)")
    q.add_argument("--json", action="store_true", help="every cell of every level, with its examples")
    q = qsub.add_parser(
        "search", help="layers, channels, classes, kinds of thing, images: as the site's search"
    )
    q.add_argument("query", help='what to look for: "dog", "blocks.3.0:5", "blocks.3.0 5", an image id')
    q.add_argument("-k", type=int, default=20, help="how many matches (default 20)")
    q.add_argument("--json", action="store_true")
    q = qsub.add_parser("scores", help="a layer's per-unit trust scores, with their definitions")
    q.add_argument("layer", help="layer name (or alias)")
    q.add_argument("--sort", default=None, metavar="KEY", help="a score key: channels by it, highest first")
    q.add_argument("--json", action="store_true", help="rows, column definitions and sentence templates")
    p.set_defaults(func=cmd_query)

    _add_compare_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        # Bad user input: one clear line, no traceback.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"model-atlas: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
