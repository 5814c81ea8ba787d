"""Snakemake adapter: merge the shards into activations.h5 with dask reductions."""
import dask

from pipeline.model import load_model
from pipeline.extract.reduce import reduce_run
from pipeline.runtime import job_logging

with job_logging(snakemake.log[0], threads=snakemake.threads, gpu=False), \
        dask.config.set(scheduler="threads", num_workers=snakemake.threads):
    cfg = snakemake.params.extract
    # Receptive fields are computed on the CPU: one small forward pass.
    model = load_model(device="cpu", **snakemake.params.model)
    reduce_run(list(snakemake.input.shards), snakemake.output[0], model, top_k=cfg["top_k"],
               bins=cfg["histogram_bins"], thumbnail_size=cfg["thumbnail_size"])
