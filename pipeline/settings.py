"""One frozen settings object per stage, built once from the validated workflow config.

Every stage (``featurevis``, ``extract``, ``blocks``, ``site``) declares a frozen
dataclass whose fields are the keys of its config section, with the schema's defaults
(``workflow/config/schema.yaml``; a test checks that they agree). The workflow builds
it from the section, the job script passes it whole to the stage's ``run_*`` entry
point, and nothing forwards settings key by key.

>>> @dataclasses.dataclass(frozen=True)
... class ToySettings(StageSettings):
...     steps: int = 512
...     layers: tuple[str, ...] | str = "all"
>>> ToySettings.from_config({"steps": 64, "layers": ["a", "b"], "enabled": True})
ToySettings(steps=64, layers=('a', 'b'))

No torch here: the workflow imports this to plan jobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T", bound="StageSettings")

# Config keys that decide whether a stage runs, not how: never part of its settings.
SWITCHES = frozenset({"enabled"})


def _frozen(value: Any) -> Any:
    """Lists become tuples (hashable, immutable); nested mappings stay as they are."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """Tuples back to lists, for JSON and for Snakemake params."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class StageSettings:
    """Base of the stages' settings dataclasses."""

    @classmethod
    def from_config(cls: type[T], section: Mapping[str, Any] | None) -> T:
        """From a workflow config section; missing keys take the defaults.

        A key the dataclass does not know is an error naming it (the schema should have
        refused it first), so that a typo never silently falls back to a default.
        """
        section = dict(section or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - names - SWITCHES)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        return cls(**{k: _frozen(v) for k, v in section.items() if k in names})

    @classmethod
    def from_job(cls: type[T], params: Mapping[str, Any], resources: Mapping[str, Any]) -> T:
        """A workflow job's settings: its ``params`` plus the class's ``SPEED_KEYS`` (if any),
        which rules pass as resources so that changing them re-runs nothing."""
        speed = {key: resources[key] for key in getattr(cls, "SPEED_KEYS", ())}
        return cls.from_config({**params, **speed})

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able values (tuples as lists), in field order."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def subset(self, keys) -> dict[str, Any]:
        """The named fields only, in the given order (e.g. the keys that decide a job's output)."""
        values = self.to_dict()
        return {k: values[k] for k in keys}

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **{k: _frozen(v) for k, v in changes.items()})


def schema_defaults(schema: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The defaults the config schema declares for ``section`` (for the agreement test)."""
    properties = schema["properties"][section]["properties"]
    return {k: _frozen(p["default"]) for k, p in properties.items() if "default" in p and k not in SWITCHES}
