rule detect:
    input:
        unpack(detection_inputs),
    output:
        detections="results/detections/{detector}/{dataset}/{variant}/shard{shard}.json",
        timing="results/timing/{detector}/{dataset}/{variant}/shard{shard}.json",
    params:
        settings=lambda wc: as_json(DETECTORS[wc.detector]),
        model=lambda wc, input: f"--model {' '.join(input.models)}" if input.models else "",
        shards=SHARDS,
    threads: 1
    log:
        "results/logs/detect/{detector}/{dataset}/{variant}/shard{shard}.log",
    benchmark:
        "results/benchmarks/detect/{detector}/{dataset}/{variant}/shard{shard}.tsv"
    shell:
        "$PYTHON -m pipeline.detection detect "
        "--settings {params.settings:q} --manifest {input.manifest} "
        "{params.model} --name {wildcards.detector} --shard {wildcards.shard} "
        "--shards {params.shards} --out {output.detections} --timing {output.timing} "
        "--threads {threads} 2> {log}"


rule merge_detections:
    input:
        manifest=paths.variant_manifest("{dataset}", "{variant}"),
        detections=expand(
            "results/detections/{{detector}}/{{dataset}}/{{variant}}/shard{shard}.json",
            shard=range(SHARDS),
        ),
        timings=expand(
            "results/timing/{{detector}}/{{dataset}}/{{variant}}/shard{shard}.json",
            shard=range(SHARDS),
        ),
    output:
        detections=paths.detections("{detector}", "{dataset}", "{variant}"),
        timing="results/timing/{detector}/{dataset}/{variant}.json",
    log:
        "results/logs/merge_detections/{detector}/{dataset}/{variant}.log",
    shell:
        "$PYTHON -m pipeline.detection merge-detections --manifest {input.manifest} "
        "--detections {input.detections} --timings {input.timings} "
        "--detector {wildcards.detector} --dataset {wildcards.dataset} "
        "--variant {wildcards.variant} --out {output.detections} "
        "--timing-out {output.timing} 2> {log}"
