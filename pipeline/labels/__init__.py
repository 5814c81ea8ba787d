"""Words for units: the class hierarchy that labels are named from (``hierarchy``)."""

from pipeline.labels.hierarchy import IMAGENET1K, ClassHierarchy, Synset

__all__ = ["IMAGENET1K", "ClassHierarchy", "Synset"]
