rule figures:
    input:
        summary="results/summary/summary.json",
        statistics="results/summary/statistics.json",
        variants=list(FIGURE_INPUTS["variants"].values()),
        detections=[path for files in FIGURE_INPUTS["detections"].values() for path in files.values()],
        models=list(FIGURE_INPUTS["models"].values()),
        cascades=[paths.trained_cascade(name, paths.models_folder(FIRST_SEED)) for name in TRAINED_CASCADES]
        + user_cascades(DETECTORS),
    output:
        [
            report(f"results/figures/{name}", category="Figures",
                   caption=f"../pipeline/report/captions/{name[:-4]}.rst")
            for name in FIGURES
        ],
    params:
        settings=as_json(FIGURE_SETTINGS),
    log:
        "results/logs/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    shell:
        "$PYTHON -m pipeline.report figures "
        "--settings {params.settings:q} --summary {input.summary} "
        "--statistics {input.statistics} --out-dir results/figures 2> {log}"


rule complexity:
    output:
        "results/summary/complexity.json",
    log:
        "results/logs/complexity.log",
    shell:
        "$PYTHON -m pipeline.report complexity --out {output} 2> {log}"


rule report:
    input:
        summary="results/summary/summary.json",
        statistics="results/summary/statistics.json",
        complexity="results/summary/complexity.json",
        figures=expand("results/figures/{name}", name=FIGURES),
        cascades=[paths.cascade_history(name, paths.models_folder(FIRST_SEED)) for name in TRAINED_CASCADES],
        tuning=[paths.tuning(d, draw) for d in TUNING for draw in DRAWS[d]],
        training=list(ARM_TRAINING.values()),
    output:
        "results/report/index.html",
    params:
        settings=as_json({**FIGURE_SETTINGS, "config": config, "arm_training": ARM_TRAINING,
                          "config_files": CONFIG_FILES}),
    log:
        "results/logs/report.log",
    shell:
        "$PYTHON -m pipeline.report report "
        "--settings {params.settings:q} --summary {input.summary} "
        "--statistics {input.statistics} --complexity {input.complexity} "
        "--figures {input.figures} --cascades {input.cascades} --tuning {input.tuning} "
        "--out {output} 2> {log}"
