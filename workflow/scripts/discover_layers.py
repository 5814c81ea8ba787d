"""Snakemake adapter: write the model's discovered layers to JSON."""
import json
from pathlib import Path

from pipeline.model import layers_document, load_model
from pipeline.runtime import job_logging, resolve_device

with job_logging(snakemake.log[0], threads=snakemake.threads):
    model = load_model(device=resolve_device(snakemake.params.device), **snakemake.params.model)
    Path(snakemake.output[0]).write_text(json.dumps(layers_document(model), indent=1))
