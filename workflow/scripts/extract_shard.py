"""Snakemake adapter: extract one shard of images into extract/shards/<start>-<stop>.h5."""
import json
from pathlib import Path

from pipeline.images.dataset import ImageRecord
from pipeline.extract.extractor import run_shard
from pipeline.model import load_model
from pipeline.runtime import job_logging, resolve_device

with job_logging(snakemake.log[0], threads=snakemake.threads,
                 gpu=bool(snakemake.resources.get("gpu", 0))):
    cfg = snakemake.params.extract
    listing = json.loads(Path(snakemake.input.images).read_text())
    start, stop = int(snakemake.wildcards.start), int(snakemake.wildcards.stop)
    records = [ImageRecord(r["image_id"], r["path"], r["label"]) for r in listing["records"]]
    model = load_model(device=resolve_device(snakemake.params.device), **snakemake.params.model)
    run_shard(model, records[start:stop], [r.label for r in records], snakemake.output[0],
              start=start, stop=stop, layers=cfg["layers"], attribution=cfg["attribution"],
              steps=cfg["integration_steps"], amp=cfg["amp"],
              # Speed only, so not in the rule's params (changing them re-runs nothing).
              batch_size=snakemake.config["extract"]["batch_size"],
              num_workers=snakemake.config["extract"]["num_workers"],
              source={k: listing[k] for k in ("source", "kind", "path", "max_images")})
