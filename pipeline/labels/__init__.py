"""Words for units: the class hierarchy that labels are named from (``hierarchy``) and the
rule that names a unit from its attribution to each class (``rule``)."""

from pipeline.labels.hierarchy import (
    IMAGENET1K,
    ClassHierarchy,
    Synset,
    chosen_hierarchy,
    imagenet_hierarchy_for,
)
from pipeline.labels.rule import DEFAULT_RULE, Evidence, Label, LabelSettings, label_units

__all__ = [
    "DEFAULT_RULE",
    "IMAGENET1K",
    "ClassHierarchy",
    "Evidence",
    "Label",
    "LabelSettings",
    "Synset",
    "chosen_hierarchy",
    "imagenet_hierarchy_for",
    "label_units",
]
