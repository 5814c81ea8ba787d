"""Which channels a feature-visualization run renders, and how they are split into jobs.

The workflow resolves ``featurevis.channels`` for each selected layer
(:func:`parse_channels`) and splits the ids into shards of ``channels_per_job`` ids
(:func:`plan_shards`); the job of a shard renders its selected channels
(:func:`shard_channels`) a batch at a time (:func:`batches`).

No torch here: the workflow imports this to plan jobs.
"""

from __future__ import annotations

from collections.abc import Sequence


def parse_channels(selection, n_channels: int, layer: str = "?") -> list[int]:
    """Resolve a config ``channels`` value for a layer of ``n_channels`` channels.

    ``"all"``; ``"START-STOP"`` (stop exclusive, clipped to the layer); or a list of
    ids, each of which must exist in the layer (a clear ValueError otherwise).
    """
    if selection is None or selection == "all":
        return list(range(n_channels))
    if isinstance(selection, str):
        start, sep, stop = selection.partition("-")
        if not sep or not start.isdigit() or not stop.isdigit() or int(start) >= int(stop):
            raise ValueError(
                f"featurevis.channels: {selection!r} is not 'all', 'START-STOP' "
                "(START < STOP) or a list of channel ids"
            )
        return list(range(int(start), min(int(stop), n_channels)))
    ids = sorted({int(c) for c in selection})
    bad = [c for c in ids if not 0 <= c < n_channels]
    if bad:
        raise ValueError(
            f"featurevis.channels: channel(s) {bad} do not exist in layer {layer!r} "
            f"({n_channels} channels, ids 0..{n_channels - 1})"
        )
    return ids


def plan_shards(selection, n_channels: int, channels_per_job: int, layer: str = "?") -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` id ranges of ``channels_per_job`` ids holding selected channels."""
    if channels_per_job < 1:
        raise ValueError(f"featurevis.channels_per_job must be >= 1, got {channels_per_job}")
    chosen = parse_channels(selection, n_channels, layer)
    starts = sorted({c // channels_per_job * channels_per_job for c in chosen})
    return [(s, min(s + channels_per_job, n_channels)) for s in starts]


def shard_channels(selection, n_channels: int, start: int, stop: int, layer: str = "?") -> list[int]:
    """The selected channel ids inside ``[start, stop)``."""
    return [c for c in parse_channels(selection, n_channels, layer) if start <= c < stop]


def batches(channels: Sequence[int], batch_size: int, diversity: int = 1) -> list[list[int]]:
    """Consecutive groups of channels; a diverse set of D images counts D items."""
    per_batch = max(1, int(batch_size) // max(1, int(diversity)))
    return [list(channels[i : i + per_batch]) for i in range(0, len(channels), per_batch)]
