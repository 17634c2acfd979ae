rule build_dataset:
    input:
        # every file the build reads (annotation lists, the images they name, image folders),
        # so that an edited annotation or image rebuilds the set and what depends on it
        lambda wc: dataset_inputs(config["datasets"][wc.dataset]),
    output:
        test="results/data/{dataset}/test.json",
        test_images=directory("results/data/{dataset}/test"),
        train=paths.training_faces("{dataset}"),
        backgrounds=paths.training_scenes("{dataset}"),
        background_images=directory("results/data/{dataset}/train_backgrounds"),
    params:
        settings=lambda wc: as_json(config["datasets"][wc.dataset]),
        out="results/data/{dataset}",
    priority: 1  # as the trainings it feeds (a priority does not pass to a job's inputs)
    log:
        "results/logs/build_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/build_dataset/{dataset}.tsv"
    shell:
        "$PYTHON -m pipeline.data build-dataset "
        "--settings {params.settings:q} --out {params.out} 2> {log}"


rule make_variant:
    input:
        "results/data/{dataset}/test.json",
    output:
        manifest=paths.variant_manifest("{dataset}", "{variant}"),
        images=directory("results/variants/{dataset}/{variant}/images"),
    params:
        settings=lambda wc: as_json(VARIANTS[wc.variant]),
        out="results/variants/{dataset}/{variant}",
    log:
        "results/logs/make_variant/{dataset}/{variant}.log",
    benchmark:
        "results/benchmarks/make_variant/{dataset}/{variant}.tsv"
    shell:
        "$PYTHON -m pipeline.data make-variant --manifest {input} --name {wildcards.variant} "
        "--settings {params.settings:q} --out {params.out} 2> {log}"
