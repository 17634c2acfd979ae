"""Stage 3, rules/detection.smk: run each detector over a variant's images (in shards) and
join the shards. The detector registry lives in :mod:`pipeline.detection.detectors`."""
