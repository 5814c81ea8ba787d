"""What ``model-atlas compare RESULTS ...`` prints: a comparison store's answers as JSON-able
values, and as text. Reads the store only (no torch)."""

from __future__ import annotations

import json

import numpy as np

from pipeline.store import json_number
from pipeline.store.compare import CompareStore, LayerMatches, open_comparison


def pairs_summary(store: CompareStore) -> dict:
    """The runs, and for each pair of runs its matched layer pairs in numbers."""
    pairs = []
    for run_a, run_b in store.pairs():
        table = store.cka(run_a, run_b)
        layers = [store.matches(a, b, run_a, run_b).summary() for a, b in store.layer_pairs(run_a, run_b)]
        pairs.append(
            {
                "run_a": run_a,
                "run_b": run_b,
                "same_architecture": table.same_architecture,
                "images": store.runs[0].images,
                "cka_batches": table.batches,
                "layer_pairs": layers,
            }
        )
    runs = [{"run": m.run, **m.model, "activations": m.activations} for m in store.runs]
    return {"runs": runs, "pairs": pairs}


def cka_table(store: CompareStore, run_a=None, run_b=None) -> dict:
    table = store.cka(run_a, run_b)
    return {
        "run_a": table.run_a,
        "run_b": table.run_b,
        "layers_a": list(table.layers_a),
        "layers_b": list(table.layers_b),
        "cka": [[json_number(v) for v in row] for row in table.values],
    }


def _channels(best: np.ndarray, best_corr: np.ndarray, partner: dict, buddies, matched, self_corr) -> list:
    rows = []
    for c in range(len(best)):
        rows.append(
            {
                "channel": c,
                "best": [{"channel": int(j), "corr": json_number(r)} for j, r in zip(best[c], best_corr[c])],
                "one_to_one": partner.get(c),
                "buddy": int(buddies[c]) if buddies[c] >= 0 else None,
                "matched": bool(matched[c]),
                "self_corr": None if self_corr is None else json_number(self_corr[c]),
            }
        )
    return rows


def layer_matches(store: CompareStore, layer_a: str, layer_b: str, run_a=None, run_b=None) -> dict:
    """One layer pair: its numbers, then every channel of each side."""
    found: LayerMatches = store.matches(layer_a, layer_b, run_a, run_b)
    table = store.cka(run_a, run_b)
    to_b = {
        int(a): {"channel": int(b), "corr": json_number(r)} for (a, b), r in zip(found.pairs, found.pair_corr)
    }
    to_a = {
        int(b): {"channel": int(a), "corr": json_number(r)} for (a, b), r in zip(found.pairs, found.pair_corr)
    }
    side_a = (found.best_a, found.best_a_corr, to_b, found.buddies_a, found.matched_a)
    side_b = (found.best_b, found.best_b_corr, to_a, found.buddies_b, found.matched_b)
    return {
        "run_a": table.run_a,
        "run_b": table.run_b,
        "summary": found.summary(),
        "unmatched_a": np.flatnonzero(~found.matched_a).tolist(),
        "unmatched_b": np.flatnonzero(~found.matched_b).tolist(),
        "channels_a": _channels(*side_a, found.self_corr),
        "channels_b": _channels(*side_b, found.self_corr),
    }


def _number(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pairs_text(found: dict) -> str:
    lines = []
    for pair in found["pairs"]:
        kind = "one architecture" if pair["same_architecture"] else "two architectures"
        lines.append(
            f"{pair['run_a']} ~ {pair['run_b']} ({kind}, {pair['images']} images): "
            f"{len(pair['layer_pairs'])} matched layer pairs"
        )
        for s in pair["layer_pairs"]:
            self_corr = f"  self {_number(s['mean_self_corr'])}" if s["mean_self_corr"] is not None else ""
            lines.append(
                f"  {s['layer_a'] + ' ~ ' + s['layer_b']:<28} CKA {_number(s['cka'])}  threshold "
                f"{_number(s['threshold'])}  matched {s['matched_a']}/{s['channels_a']} and "
                f"{s['matched_b']}/{s['channels_b']}  buddies {s['buddies']}{self_corr}"
            )
    return "\n".join(lines)


def _cka_text(found: dict) -> str:
    lines = [f"CKA of {found['run_a']} (rows) against {found['run_b']} (columns)"]
    lines.append(" " * 16 + " ".join(f"{j:>5}" for j in range(len(found["layers_b"]))))
    for name, row in zip(found["layers_a"], found["cka"]):
        lines.append(f"{name:<16}" + " ".join(f"{_number(v):>5}" for v in row))
    lines += [f"  column {j}: {name}" for j, name in enumerate(found["layers_b"])]
    return "\n".join(lines)


def _matches_text(found: dict) -> str:
    s = found["summary"]
    lines = [
        f"{found['run_a']} {s['layer_a']} ~ {found['run_b']} {s['layer_b']}: CKA {_number(s['cka'])}, "
        f"a match needs correlation >= {_number(s['threshold'])}",
        f"matched {s['matched_a']}/{s['channels_a']} and {s['matched_b']}/{s['channels_b']} channels; "
        f"{s['buddies']} best buddies",
        f"unmatched in {found['run_a']}: {found['unmatched_a'] or 'none'}",
        f"unmatched in {found['run_b']}: {found['unmatched_b'] or 'none'}",
        f"{found['run_a']} channel -> best in {found['run_b']} (corr), one-to-one partner, buddy:",
    ]
    for row in found["channels_a"]:
        best, partner = row["best"][0], row["one_to_one"]
        pair = f"{partner['channel']} ({_number(partner['corr'])})" if partner else "-"
        extra = "" if row["self_corr"] is None else f"  self {_number(row['self_corr'])}"
        lines.append(
            f"  {row['channel']:>5} -> {best['channel']:>5} ({_number(best['corr'])})  one-to-one {pair}"
            f"{'  buddy' if row['buddy'] is not None else ''}{'' if row['matched'] else '  UNMATCHED'}{extra}"
        )
    return "\n".join(lines)


def run_cli(args) -> int:
    """``model-atlas compare RESULTS [pairs|cka|matches LAYER_A LAYER_B] [--runs A B] [--json]``."""
    runs = args.runs or (None, None)
    with open_comparison(args.results) as store:
        if args.what == "cka":
            found, text = cka_table(store, *runs), _cka_text
        elif args.what == "matches":
            if len(args.layers) != 2:
                raise ValueError("compare matches: give two layers, LAYER_A LAYER_B")
            found, text = layer_matches(store, *args.layers, *runs), _matches_text
        else:
            found, text = pairs_summary(store), _pairs_text
    print(json.dumps(found, indent=2) if args.json else text(found))
    return 0
