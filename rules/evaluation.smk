rule calibrate:
    # a choice made from results: the box calibration with the highest AP on the fitting set
    # (never a test set), every candidate's AP written beside it
    input:
        truth=paths.variant_manifest("{dataset}", BASELINE_VARIANT),
        detections=paths.detections("{detector}", "{draw}", "{dataset}", BASELINE_VARIANT),
    output:
        paths.box_calibration("{detector}", "{draw}", "{dataset}"),
    params:
        settings=as_json(config["evaluation"]),
    log:
        "results/logs/calibrate/{detector}/{draw}/{dataset}.log",
    benchmark:
        "results/benchmarks/calibrate/{detector}/{draw}/{dataset}.tsv"
    shell:
        "$PYTHON -m pipeline.evaluation calibrate --settings {params.settings:q} "
        "--truth {input.truth} --detections {input.detections} "
        "--detector {wildcards.detector} --draw {wildcards.draw} --dataset {wildcards.dataset} "
        "--out {output} "
        "2> {log}"


rule evaluate:
    input:
        truth=paths.variant_manifest("{dataset}", "{variant}"),
        detections=paths.detections("{detector}", "{draw}", "{dataset}", "{variant}"),
        calibration=calibration_file,
    output:
        "results/metrics/{detector}/{draw}/{dataset}/{variant}.json",
    params:
        settings=as_json(config["evaluation"]),
        search_min_size=SEARCH_MIN_SIZE,
        resample_unit=lambda wc: config["datasets"][wc.dataset]["resample_unit"],
        calibration=lambda wc, input: (
            f"--calibration {input.calibration}" if input.calibration else ""
        ),
    log:
        "results/logs/evaluate/{detector}/{draw}/{dataset}/{variant}.log",
    benchmark:
        "results/benchmarks/evaluate/{detector}/{draw}/{dataset}/{variant}.tsv"
    shell:
        "$PYTHON -m pipeline.evaluation evaluate "
        "--settings {params.settings:q} --truth {input.truth} "
        "--detections {input.detections} {params.calibration} "
        "--search-min-size {params.search_min_size} --resample-unit {params.resample_unit} "
        "--detector {wildcards.detector} --draw {wildcards.draw} --dataset {wildcards.dataset} "
        "--variant {wildcards.variant} --out {output} 2> {log}"


rule statistics:
    input:
        expand("results/metrics/{run}.json", run=RUNS),
    output:
        "results/summary/statistics.json",
    params:
        settings=as_json(statistics_settings(config)),
    log:
        "results/logs/statistics.log",
    benchmark:
        "results/benchmarks/statistics.tsv"
    shell:
        "$PYTHON -m pipeline.evaluation statistics "
        "--settings {params.settings:q} --metrics {input} "
        "--out {output} 2> {log}"


rule summarise:
    input:
        metrics=expand("results/metrics/{run}.json", run=RUNS),
        timings=expand("results/timing/{run}.json", run=RUNS),
    output:
        csv=report("results/summary/summary.csv", category="Tables",
                   caption="../pipeline/report/captions/summary.rst"),
        json="results/summary/summary.json",
    log:
        "results/logs/summarise.log",
    shell:
        "$PYTHON -m pipeline.evaluation summarise "
        "--metrics {input.metrics} --timings {input.timings} "
        "--out-csv {output.csv} --out-json {output.json} 2> {log}"
