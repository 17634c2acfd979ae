rule tune_operating_point:
    # a detector's operating point chosen on the tune sets only (role tune), per training draw;
    # every candidate's scores and the choice go to results/tuning/, which detection reads
    input:
        unpack(tuning_inputs),
    output:
        paths.tuning("{detector}", "{draw}"),
    params:
        settings=lambda wc: as_json(DETECTORS[wc.detector]),
        grid=lambda wc: as_json(TUNING[wc.detector]["grid"]),
        truth=lambda wc, input: " ".join(
            f"{name}={path}" for name, path in zip(TUNE_SETS[wc.detector], input.truth)),
        model=lambda wc, input: f"--model {' '.join(input.models)}" if input.models else "",
        evaluation=as_json(config["evaluation"]),
        search_min_size=SEARCH_MIN_SIZE,
    threads: 1
    log:
        "results/logs/tune_operating_point/{detector}/{draw}.log",
    benchmark:
        "results/benchmarks/tune_operating_point/{detector}/{draw}.tsv"
    shell:
        "$PYTHON -m pipeline.tuning tune-operating-point "
        "--settings {params.settings:q} --name {wildcards.detector} --draw {wildcards.draw} "
        "--grid {params.grid:q} --truth {params.truth} {params.model} "
        "--evaluation {params.evaluation:q} --search-min-size {params.search_min_size} "
        "--out {output} --threads {threads} 2> {log}"
