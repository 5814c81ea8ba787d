"""Write data/hierarchy/imagenet1k.json: the WordNet 3.0 hypernym graph above the 1,000
ImageNet-1k classes, for the automatic unit labels (docs/STORE.md, "Class hierarchy").

An ImageNet-1k class is a WordNet 3.0 noun synset, and its id (``n02099712``) is ``n`` plus
the synset's byte offset in WordNet's ``data.noun``. This script reads that file directly
(a line per synset: offset, lemmas, then pointers; ``@`` is a hypernym and ``@i`` an instance
hypernym) and keeps every ancestor of every class, so the graph keeps both of a synset's
parents where WordNet gives two (dog is a canine and a domestic animal).

Sources, both offline:
* WordNet 3.0's ``data.noun``, from Debian's ``wordnet-base`` package
  (``apt-get install wordnet-base``: /usr/share/wordnet/data.noun);
* the class order: the 1,000 synset ids in the order of the classifier's outputs, from
  timm's ``timm/data/_info/imagenet_synsets.txt`` (installed with model-atlas).

    .venv/bin/python tools/make_class_hierarchy.py [--wordnet /usr/share/wordnet/data.noun]

The output is deterministic (sorted keys, no dates), so re-running it changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "data" / "hierarchy" / "imagenet1k.json"
WORDNET = Path("/usr/share/wordnet/data.noun")
HYPERNYM_POINTERS = {"@", "@i"}


def parse_data_noun(path: Path) -> dict[str, dict]:
    """Every noun synset of a WordNet ``data.noun``: id -> {"lemmas", "parents"}."""
    synsets = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.startswith("  "):  # the licence header
                continue
            fields = line.split(" | ", 1)[0].split()
            try:
                offset, word_count = fields[0], int(fields[3], 16)
                lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(word_count)]
                at = 4 + 2 * word_count
                pointer_count = int(fields[at])
                pointers = [fields[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(pointer_count)]
            except (IndexError, ValueError) as error:
                raise ValueError(f"{path}:{number}: not a WordNet data line ({error})") from None
            parents = [
                f"n{target}"
                for symbol, target, pos, _ in pointers
                if symbol in HYPERNYM_POINTERS and pos == "n"
            ]
            # An adjective-derived lemma carries a marker like "(a)"; the name drops it.
            synsets[f"n{offset}"] = {"lemmas": [lemma.split("(")[0] for lemma in lemmas], "parents": parents}
    return synsets


def imagenet_class_order() -> list[str]:
    text = resources.files("timm.data").joinpath("_info/imagenet_synsets.txt").read_text()
    order = text.split()
    if len(order) != 1000:
        raise ValueError(f"timm's imagenet_synsets.txt lists {len(order)} synsets, not 1000")
    return order


def hierarchy(classes: list[str], synsets: dict[str, dict]) -> dict:
    """The classes and every ancestor of theirs, each with its name, lemmas and parents."""
    kept, todo = {}, list(classes)
    while todo:
        wnid = todo.pop()
        if wnid in kept:
            continue
        if wnid not in synsets:
            raise KeyError(f"synset {wnid} is not in WordNet 3.0's data.noun")
        entry = synsets[wnid]
        kept[wnid] = {"name": entry["lemmas"][0], "lemmas": entry["lemmas"], "parents": entry["parents"]}
        todo += entry["parents"]
    return {
        "format": "model-atlas.class-hierarchy",
        "format_version": 1,
        "source": "WordNet 3.0 (Princeton University), data.noun of Debian's wordnet-base package; "
        "class order from timm's imagenet_synsets.txt; made by tools/make_class_hierarchy.py",
        "license": "WordNet 3.0 license: data/hierarchy/LICENSE-WordNet-3.0",
        "classes": classes,
        "synsets": dict(sorted(kept.items())),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wordnet", type=Path, default=WORDNET, help="WordNet 3.0's data.noun")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if not args.wordnet.is_file():
        parser.error(f"{args.wordnet}: not found; install WordNet 3.0 (apt-get install wordnet-base)")
    data = hierarchy(imagenet_class_order(), parse_data_noun(args.wordnet))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=0, sort_keys=False, ensure_ascii=False) + "\n")
    print(f"{args.output}: {len(data['classes'])} classes, {len(data['synsets'])} synsets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
