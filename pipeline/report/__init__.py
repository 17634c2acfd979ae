"""Stage 5, rules/report.smk: figures, network complexity tables and the HTML report."""
