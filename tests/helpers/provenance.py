"""Provenance records for tests that write stores by hand (the writers take nothing else)."""

from __future__ import annotations

from pipeline.store import ProvenanceRecord, provenance


def record(settings: dict | None = None, *, stage: str = "test", **derived) -> ProvenanceRecord:
    """A record of a hand-written test store: ``settings`` as its settings, any keyword as derived
    (a record given is returned as it is)."""
    if isinstance(settings, ProvenanceRecord):
        return settings
    return provenance(
        stage=stage,
        settings=dict(settings or {}),
        model={"name": "tiny", "weights": "random"},
        derived=derived,
    )
