"""Stage 4, rules/evaluation.smk: box calibration, matching detections to ground truth,
bootstrap statistics and the summary table."""
