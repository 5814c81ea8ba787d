"""Snakemake adapter: render one (layer, channel range) shard of feature visualizations."""
from pipeline.featurevis.render import run_shard
from pipeline.runtime import job_logging, resolve_device

with job_logging(snakemake.log[0], threads=snakemake.threads,
                 gpu=bool(snakemake.resources.get("gpu", 0))):
    run_shard(snakemake.output[0], model_name=snakemake.params.model["name"],
              weights=snakemake.params.model["weights"], layer=snakemake.wildcards.layer,
              start=int(snakemake.wildcards.start), stop=int(snakemake.wildcards.stop),
              selection=snakemake.params.channels, settings=snakemake.params.settings,
              device=resolve_device(snakemake.params.device))
