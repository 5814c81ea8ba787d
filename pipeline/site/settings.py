"""The site stage's settings: the workflow config's ``site:`` section as a frozen dataclass."""

from __future__ import annotations

import dataclasses

from pipeline.settings import StageSettings


@dataclasses.dataclass(frozen=True)
class SiteSettings(StageSettings):
    """What the static site shows (defaults as in ``workflow/config/schema.yaml``)."""

    title: str | None = None  # shown on every page; None: the model's name
    thumbnail_size: int = 64  # channel thumbnails on layer pages and in icon lists, px per side
    top_examples: int = 12  # dataset examples per channel page (at most extract.top_k)
    negative_examples: int = 4  # most negative examples per channel page (where below zero)
    circuit_channels: int = 6  # upstream and downstream channels per channel page
    top_classes: int = 10  # classes per channel page, by mean attribution
    similar_channels: int = 8  # most similar channels per channel page; 0 to skip
    class_channels: int = 8  # channels per layer on class pages and per class on image pages
    overview_channels: int = 8  # strongest channels per layer in the whole-model overview
    overview_score_channels: int = 3  # clearest and most polysemantic channels per layer there
