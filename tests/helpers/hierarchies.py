"""Hand-made class hierarchies (docs/STORE.md, "Class hierarchy") for the labels tests."""

from __future__ import annotations

# Eight classes: three animals, five artifacts; every path ends at "entity".
#   entity <- animal <- carnivore <- dog <- retriever <- {lab, golden}
#                                 <- cat <- tabby
#          <- artifact <- vehicle <- {car, truck, bus}
#                      <- boat <- canoe
#                      <- instrument <- violin
# dog also sits under "domestic animal" (a second parent), as in WordNet. With the default
# max_share 0.5, synsets over more than 4 classes (artifact, entity) are never labels.
TOY = {
    "format": "model-atlas.class-hierarchy",
    "format_version": 1,
    "classes": ["lab", "golden", "tabby", "car", "truck", "bus", "canoe", "violin"],
    "synsets": {
        "lab": {"name": "Labrador retriever", "parents": ["retriever"]},
        "golden": {"name": "golden retriever", "parents": ["retriever"]},
        "retriever": {"name": "retriever", "parents": ["dog"]},
        "tabby": {"name": "tabby", "parents": ["cat"]},
        "dog": {"name": "dog", "parents": ["carnivore", "domestic animal"]},
        "cat": {"name": "cat", "parents": ["carnivore"]},
        "domestic animal": {"name": "domestic animal", "parents": ["animal"]},
        "carnivore": {"name": "carnivore", "parents": ["animal"]},
        "animal": {"name": "animal", "parents": ["entity"]},
        "car": {"name": "car", "parents": ["vehicle"]},
        "truck": {"name": "truck", "parents": ["vehicle"]},
        "bus": {"name": "bus", "parents": ["vehicle"]},
        "vehicle": {"name": "vehicle", "parents": ["artifact"]},
        "canoe": {"name": "canoe", "parents": ["boat"]},
        "boat": {"name": "boat", "parents": ["artifact"]},
        "violin": {"name": "violin", "parents": ["instrument"]},
        "instrument": {"name": "instrument", "parents": ["artifact"]},
        "artifact": {"name": "artifact", "parents": ["entity"]},
        "entity": {"name": "entity", "parents": []},
    },
}
