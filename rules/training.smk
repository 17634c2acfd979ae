rule train_cnn:
    input:
        unpack(training_inputs("models")),
    output:
        paths.checkpoint("{model}", paths.models_folder("{seed}")),
    params:
        settings=lambda wc: as_json(config["models"][wc.model]),
    threads: TRAINING_THREADS
    priority: 1  # long jobs that every detection of their model waits for: start them first
    log:
        "results/logs/train_cnn/seed{seed}/{model}.log",
    benchmark:
        "results/benchmarks/train_cnn/seed{seed}/{model}.tsv"
    shell:
        "$PYTHON -m pipeline.training train-cnn "
        "--settings {params.settings:q} --train {input.train} "
        "--backgrounds {input.backgrounds} --out {output} --seed {wildcards.seed} "
        "--threads {threads} 2> {log}"


rule train_haar:
    input:
        unpack(training_inputs("cascades")),
    output:
        cascade=paths.trained_cascade("{model}", paths.models_folder("{seed}")),
        history=paths.cascade_history("{model}", paths.models_folder("{seed}")),
    params:
        settings=lambda wc: as_json(config["cascades"][wc.model]),
    threads: TRAINING_THREADS
    priority: 1  # long jobs that every detection of their model waits for: start them first
    log:
        "results/logs/train_haar/seed{seed}/{model}.log",
    benchmark:
        "results/benchmarks/train_haar/seed{seed}/{model}.tsv"
    shell:
        "$PYTHON -m pipeline.training train-haar "
        "--settings {params.settings:q} --train {input.train} "
        "--backgrounds {input.backgrounds} --out {output.cascade} "
        "--history {output.history} --seed {wildcards.seed} --threads {threads} 2> {log}"
