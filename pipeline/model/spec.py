"""Which network a job runs, and on which device: the torch-free half of :mod:`pipeline.model`.

The workflow builds one :class:`ModelSpec` from its config (``model.name``,
``model.weights`` and the top-level ``device``) and hands it, as a plain dict, to
every job that runs the network; each job loads its own model with :meth:`ModelSpec.load`.

>>> ModelSpec.from_workflow_config({"model": {"name": "googlenet", "weights": "pretrained"},
...                                 "device": "cuda"})
ModelSpec(name='googlenet', weights='pretrained', device='cuda')
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.settings import StageSettings

if TYPE_CHECKING:
    from pipeline.model.registry import LoadedModel


@dataclasses.dataclass(frozen=True)
class ModelSpec(StageSettings):
    """A model by registry name or loader path, its weights, and the torch device to run it on
    (defaults: the config schema's)."""

    name: str = "efficientnet_lite0"
    weights: str = "pretrained"
    device: str = "cpu"

    @classmethod
    def from_workflow_config(cls, config: Mapping[str, Any]) -> ModelSpec:
        """From the whole validated workflow config: its ``model:`` section and ``device``."""
        return cls.from_config({**config.get("model", {}), "device": config.get("device", cls.device)})

    def on(self, device: str) -> ModelSpec:
        """The same model on another device (jobs that need no GPU run on ``"cpu"``)."""
        return self.replace(device=device)

    def loader_source(self) -> str | None:
        """``sha256:<hex>`` of a custom loader's source file (``package.module:function``),
        None for other names or when the module cannot be found.

        The workflow's `layers` rule takes it as a param, so that editing the loader makes the
        run discover its layers again. The module is found (``importlib.util.find_spec``),
        not imported: planning a run imports no torch.
        """
        module, colon, _ = self.name.partition(":")
        if not colon:
            return None
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        if found is None or not found.origin or not os.path.isfile(found.origin):
            return None
        with open(found.origin, "rb") as source:
            return "sha256:" + hashlib.sha256(source.read()).hexdigest()

    def load(self) -> LoadedModel:
        """Build the model on its device (a clear error when that device is not available)."""
        from pipeline.model.registry import load_model
        from pipeline.runtime import resolve_device

        return load_model(self.name, weights=self.weights, device=resolve_device(self.device))
