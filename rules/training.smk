rule train_cnn:
    input:
        unpack(training_inputs("models")),
    output:
        paths.checkpoint("{model}"),
    params:
        settings=lambda wc: as_json(config["models"][wc.model]),
    threads: config["execution"]["training_threads"]
    priority: 1  # long jobs that every detection of their model waits for: start them first
    log:
        "results/logs/train_cnn/{model}.log",
    benchmark:
        "results/benchmarks/train_cnn/{model}.tsv"
    shell:
        "$PYTHON -m pipeline.training train-cnn "
        "--settings {params.settings:q} --train {input.train} "
        "--backgrounds {input.backgrounds} --out {output} --threads {threads} 2> {log}"


rule train_haar:
    input:
        unpack(training_inputs("cascades")),
    output:
        cascade=paths.trained_cascade("{model}"),
        history=paths.cascade_history("{model}"),
    params:
        settings=lambda wc: as_json(config["cascades"][wc.model]),
    threads: config["execution"]["training_threads"]
    priority: 1  # long jobs that every detection of their model waits for: start them first
    log:
        "results/logs/train_haar/{model}.log",
    benchmark:
        "results/benchmarks/train_haar/{model}.tsv"
    shell:
        "$PYTHON -m pipeline.training train-haar "
        "--settings {params.settings:q} --train {input.train} "
        "--backgrounds {input.backgrounds} --out {output.cascade} "
        "--history {output.history} --threads {threads} 2> {log}"
