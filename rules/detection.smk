rule detect:
    input:
        unpack(detection_inputs),
    output:
        detections="results/detections/{detector}/{draw}/{dataset}/{variant}/shard{shard}.json",
        timing="results/timing/{detector}/{draw}/{dataset}/{variant}/shard{shard}.json",
    params:
        settings=lambda wc: as_json(DETECTORS[wc.detector]),
        model=lambda wc, input: f"--model {' '.join(input.models)}" if input.models else "",
        tuning=lambda wc, input: f"--tuning {input.tuning}" if input.tuning else "",
        shards=SHARDS,
    threads: 1
    log:
        "results/logs/detect/{detector}/{draw}/{dataset}/{variant}/shard{shard}.log",
    benchmark:
        "results/benchmarks/detect/{detector}/{draw}/{dataset}/{variant}/shard{shard}.tsv"
    shell:
        "$PYTHON -m pipeline.detection detect "
        "--settings {params.settings:q} --manifest {input.manifest} "
        "{params.model} {params.tuning} --name {wildcards.detector} --shard {wildcards.shard} "
        "--shards {params.shards} --out {output.detections} --timing {output.timing} "
        "--threads {threads} 2> {log}"


rule merge_detections:
    input:
        manifest=paths.variant_manifest("{dataset}", "{variant}"),
        detections=expand(
            "results/detections/{{detector}}/{{draw}}/{{dataset}}/{{variant}}/shard{shard}.json",
            shard=range(SHARDS),
        ),
        timings=expand(
            "results/timing/{{detector}}/{{draw}}/{{dataset}}/{{variant}}/shard{shard}.json",
            shard=range(SHARDS),
        ),
    output:
        detections=paths.detections("{detector}", "{draw}", "{dataset}", "{variant}"),
        timing="results/timing/{detector}/{draw}/{dataset}/{variant}.json",
    log:
        "results/logs/merge_detections/{detector}/{draw}/{dataset}/{variant}.log",
    shell:
        "$PYTHON -m pipeline.detection merge-detections --manifest {input.manifest} "
        "--detections {input.detections} --timings {input.timings} "
        "--detector {wildcards.detector} --draw {wildcards.draw} --dataset {wildcards.dataset} "
        "--variant {wildcards.variant} --out {output.detections} "
        "--timing-out {output.timing} 2> {log}"
