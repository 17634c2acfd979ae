"""Viola-Jones vs CNN face detection under shadow and cartoon variants.

Method, one rule per stage (rule files under rules/, in the order of the method):
  rules/data.smk
  1. build_dataset  read or compose each dataset: test images with boxes, training faces and
                    scenes (embedded data, annotated real sets, face folders, Yale B)
  2. make_variant   the same test images, altered (original / shadow / cartoon / shadow sweep)
  rules/training.smk
  3. train_cnn      train the CNN face classifier with hard-negative mining
     train_haar     train a Viola-Jones cascade on the same faces and scenes (OpenCV XML)
  rules/tuning.smk
  4. tune_operating_point  (where tuning: names a detector) its operating point, chosen on the
                    tune sets only, per training seed, with every candidate's score
  rules/detection.smk
  5. detect         run each detector draw (one per training seed) on each variant of each
                    dataset, in image shards, at its tuned operating point
     merge_detections  join the shards; wall time per image goes to results/timing/
  rules/evaluation.smk
  6. evaluate       match detections to ground truth: PR curve, AP, detection rate vs FP
     calibrate      (optional) a detector's box calibration, fitted on a training/tune set
  7. statistics     bootstrap intervals over training seeds and test images, paired detector
                    tests, share of AP kept, the verdict (test sets only)
     summarise      one table of all runs (means over the seeds)
  rules/report.smk
  8. figures        comparison figures
  9. report         the self-contained HTML report (with complexity: per-layer network table)

Every rule's parameters are the config section it depends on, so changing one setting reruns
that stage and its descendants only. Each rule calls a command of the package's CLI,
`python -m pipeline`, through its stage's part (`python -m pipeline.<stage> <command>`:
rules/data.smk calls pipeline.data, and so on); rules/common.smk holds the names derived from
the config.
"""

from pathlib import Path

from snakemake.logging import logger

from pipeline.command_line_config import typed_command_line_values
from pipeline.config import resolve_data_paths, validate_config
from pipeline.detection.detectors import require_packages
from pipeline.scheduler_wakeups import limit_scheduler_wakeups


configfile: Path(workflow.basedir) / "config" / "default.yaml"


# `--config seeds=[0,1]` gives text items: typed as the schema asks, and logged
typed = typed_command_line_values(config, workflow.config_settings.config)
if typed:
    logger.info("--config values typed as the schema asks: " + ", ".join(typed))
validate_config(config)
require_packages([d["kind"] for d in config["detectors"].values()])
resolve_data_paths(config)
# one pending wake-up timer per scheduler, not one chain per finished job (CHANGELOG); where
# Snakemake lacks the method it replaces, it warns and leaves Snakemake alone
limit_scheduler_wakeups()


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/training.smk"
include: "rules/tuning.smk"
include: "rules/detection.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/report/index.html",
