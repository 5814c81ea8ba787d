"""What a page says about a unit's trust scores (issue 26): the channel page's scorecard,
the score columns and filters of a layer page, and the index's clearest and most
polysemantic units.

The scores come from ``scores.h5`` (:mod:`pipeline.store.scores`; the reader puts them on
:attr:`~pipeline.site.data.Channel.scores`), their names, definitions and sentences from
:mod:`pipeline.scores.definitions`. Everything here is plain Python over those values;
docs/FRONTEND.md ("Scores") says how the pages use it. No torch, no numpy.
"""

from __future__ import annotations

import bisect
import math
import string
from collections.abc import Sequence

from pipeline.scores.definitions import SCORES, Score
from pipeline.site.numbers import format_number

# A visualization whose strength is below this is called weak, and its page leads with the
# dataset examples. Strength is the channel's maximum on its own picture over its maximum on
# any dataset image, so 1 means "as strong as the best photo". Values a little below 1 are
# normal where the layer ends in a cap: the picture was optimised before the cap and the
# output saturates at it (the demo's blocks.0.0, ReLU6-capped, has a median of 0.91 and its
# stem ties at 1). Below half, the picture shows less than half of what the unit responds
# to on a real image, which no cap explains (2 of the demo's 3,120 channels).
WEAK_STRENGTH = 0.5

# The path check's flag is shown only on runs with at least this many dataset images. Its
# floor is the least natural-looking of a few dozen crops of the run's own images, so it
# depends on how many images there are: it flagged 1,487 of 3,120 channels (48 %) on the
# demo's 8 photos and 154 (4.9 %) on 200 labelled photos (docs/PERFORMANCE.md, "Per-unit
# scores"). Below 100 images the flag says more about the dataset than about the unit; the
# path similarity itself is still shown.
PATH_FLAG_MIN_IMAGES = 100

# Shares (0-1) are shown as percentages: "It fires on 52 % of the images".
SHARE_KEYS = frozenset({"label_precision", "fires_images", "fires_positions"})
# Counts and flags: "where it falls" is the share of the layer's channels with the same
# value, not a percentile.
DISCRETE_KEYS = frozenset({"image_rank", "groups", "path_flag"})
# What a page says of an unflagged path (the definitions' sentence is about a flagged one).
PATH_PASSED = "Its visualization travels through the earlier layers as some natural crop does."

# The layer page's filters: token -> what the menu says (:func:`filter_tokens` decides).
FILTERS = {
    "clear": "top examples more alike than random crops (clarity over random > 0)",
    "weak": f"weak visualization (strength < {format_number(WEAK_STRENGTH)})",
    "flagged": "visualization path flagged as unnatural",
    "groups": "top examples in two groups",
}


# Scores closer than this are the same score: float32 sums of identical inputs differ in
# the last bits (the demo's deep layers: clarity over random 5.6e-17 beside 0 where every
# channel has the same top images), and a ranking by that noise would be made up.
TIE = 1e-9


def _level(value: float) -> float:
    """``value`` rounded to :data:`TIE`: what the page compares."""
    return round(float(value) / TIE) * TIE


def path_flag_shown(images: int | None) -> bool:
    """Whether a run of ``images`` dataset images shows the path check's flag."""
    return images is not None and images >= PATH_FLAG_MIN_IMAGES


def layer_values(units) -> dict[str, list[float]]:
    """Per score key, the sorted values of the layer's channels that have one."""
    out: dict[str, list[float]] = {}
    for unit in units:
        for key, value in unit.scores.items():
            if value is not None:
                out.setdefault(key, []).append(_level(value))
    return {key: sorted(values) for key, values in out.items()}


def where_it_falls(key: str, value: float, values: Sequence[float], channels: int) -> dict:
    """Where ``value`` falls among the layer's sorted ``values`` of ``key`` (itself included;
    the layer has ``channels``, some maybe without a value):
    ``below`` and ``same`` are the percentages (0-100, rounded) of the layer's other channels
    with a lower and with the same value, ``text`` says it in words, ``bar`` is the width
    of its bar in percent (None for a count or a flag)."""
    value = _level(value)
    lo, hi = bisect.bisect_left(values, value), bisect.bisect_right(values, value)
    others = max(len(values) - 1, 1)
    below, same = round(100 * lo / others), round(100 * max(hi - lo - 1, 0) / others)
    if len(values) == channels:
        whom = f"the layer's {channels} channels"
    else:
        whom = f"the {len(values)} of its {channels} channels with a value"
    if key in DISCRETE_KEYS:
        text = f"as {round(100 * (hi - lo) / len(values))} % of {whom}"
    else:
        text = f"higher than {below} % of {whom}" + (f", the same as {same} %" if same else "")
    # A bar only for a percentile: a count or a flag is said in words.
    return {"below": below, "same": same, "text": text, "bar": None if key in DISCRETE_KEYS else below}


def shown_value(key: str, value: float | None) -> str:
    """A score as the page prints it: a share as a percentage, the flag as yes or no, the
    rest through :func:`format_number` (None: the site's dash)."""
    if value is None:
        return format_number(None)
    if key == "path_flag":
        return "yes" if value else "no"
    if key in SHARE_KEYS:
        return f"{format_number(100 * value)} %"
    return format_number(value)


def sentence(score: Score, scores: dict, info: dict | None, percentile: int | None = None) -> str:
    """The score's plain-language sentence about one channel: its template filled with the
    channel's values (``{value}``, any other column by key), ``{percentile}`` and the
    layer's ``{clarity_random}``."""
    if score.key == "path_flag" and not scores.get("path_flag"):
        return PATH_PASSED
    fields = {key: shown_value(key, value) for key, value in scores.items()}
    fields["value"] = shown_value(score.key, scores.get(score.key))
    fields["percentile"] = format_number(percentile)
    fields["clarity_random"] = format_number((info or {}).get("clarity_random"))
    return string.Formatter().vformat(score.sentence, (), _Missing(fields))


class _Missing(dict):
    """Template fields a row lacks print as the site's dash instead of failing the page."""

    def __missing__(self, key):
        return format_number(None)


def scorecard(
    unit, values: dict[str, list[float]], channels: int, info: dict | None, images: int | None
) -> dict | None:
    """A channel's scorecard: ``rows`` (per score with a value: ``key``, ``name``,
    ``value`` as printed, where it falls in the layer and the sentence), ``missing`` (the
    names of the scores it has no value for) and ``hidden`` (why a score is not shown);
    None when the run has no scores of the channel. ``values``: :func:`layer_values` of its
    layer of ``channels``; ``info``: the layer's ``scores_info``; ``images``: the run's
    dataset images."""
    if not unit.scores:
        return None
    rows, missing, hidden = [], [], []
    for score in SCORES:
        value = unit.scores.get(score.key)
        if score.key == "path_flag" and value is not None and not path_flag_shown(images):
            hidden.append(
                f"{score.name}: shown from {PATH_FLAG_MIN_IMAGES} dataset images (this run has "
                f"{images or 0}); on fewer it flags a large share of any layer"
            )
            continue
        if value is None:
            missing.append(score.name)
            continue
        where = where_it_falls(score.key, float(value), values.get(score.key, [_level(value)]), channels)
        rows.append(
            {
                "key": score.key,
                "name": score.name,
                "value": shown_value(score.key, value),
                "where": where,
                "sentence": sentence(score, unit.scores, info, where["below"]),
                "higher": score.higher,
            }
        )
    return {"rows": rows, "missing": missing, "hidden": hidden}


def weak_visualization(unit, images: int | None) -> list[str]:
    """Why the channel's visualization should not be read as its meaning (empty: no reason):
    it is weak (strength below :data:`WEAK_STRENGTH`) or its path is flagged (on runs that
    show the flag). Its page then leads with the dataset examples."""
    reasons = []
    strength = unit.scores.get("strength")
    if strength is not None and strength < WEAK_STRENGTH:
        reasons.append(
            f"it excites the unit only {format_number(strength)} times as much as its best dataset image"
        )
    if unit.scores.get("path_flag") and path_flag_shown(images):
        reasons.append("it travels through the earlier layers unlike any natural crop (the path check)")
    return reasons


def filter_tokens(scores: dict, images: int | None) -> list[str]:
    """The layer page's filters a channel passes (:data:`FILTERS`)."""
    tokens = []
    if (scores.get("clarity_gain") or 0) > 0:
        tokens.append("clear")
    strength = scores.get("strength")
    if strength is not None and strength < WEAK_STRENGTH:
        tokens.append("weak")
    if scores.get("path_flag") and path_flag_shown(images):
        tokens.append("flagged")
    if scores.get("groups") == 2:
        tokens.append("groups")
    return tokens


def filter_menu(tokens: Sequence[Sequence[str]], images: int | None) -> list[dict]:
    """The layer page's filter menu from each channel's :func:`filter_tokens`: per filter
    its ``token``, ``what`` and how many channels pass (``count``); the path flag's only
    on runs that show it."""
    return [
        {"token": token, "what": what, "count": sum(token in passed for passed in tokens)}
        for token, what in FILTERS.items()
        if token != "flagged" or path_flag_shown(images)
    ]


def sort_attribute(key: str) -> str:
    """The layer page's ``data-`` attribute (and sort key) of a score: ``clarity-gain``."""
    return key.replace("_", "-")


def attribute_value(value: float | None) -> str:
    """A score in a ``data-`` attribute, "" for none: 6 significant digits, enough to sort
    by and to show with the site's 4 (shorter than the full float's 17)."""
    if value is None or not math.isfinite(value):
        return ""
    return format(float(value), ".6g")


def picks(units, key: str, k: int) -> list[tuple]:
    """The ``k`` channels with the highest ``key`` (ties: lower channel first) as ``(unit,
    value)``; empty when no two channels of the layer differ in it (an order without a
    difference would pick the first channels and call them the clearest)."""
    scored = [(u, u.scores[key]) for u in units if u.scores.get(key) is not None]
    if len({_level(value) for _, value in scored}) < 2:
        return []
    return sorted(scored, key=lambda pair: (-_level(pair[1]), pair[0].index))[:k]
