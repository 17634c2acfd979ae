"""Viola-Jones vs CNN face detection under shadow and cartoon variants.

Method, one rule per stage:
  1. build_dataset  read or compose each dataset: test images with boxes, training faces and
                    scenes (embedded data, annotated real sets, face folders, Yale B)
  2. make_variant   the same test images, altered (original / shadow / cartoon / shadow sweep)
  3. train_cnn      train the CNN face classifier with hard-negative mining
     train_haar     train a Viola-Jones cascade on the same faces and scenes (OpenCV XML)
  4. detect         run each detector on each variant of each dataset, in image shards
     merge_detections  join the shards; wall time per image goes to results/timing/
  5. evaluate       match detections to ground truth: PR curve, AP, detection rate vs FP
     calibrate      (optional) a detector's box calibration, fitted on a training/dev set
  6. statistics     bootstrap intervals over images, paired detector tests, relative AP
     summarise      one table of all runs
  7. figures        comparison figures
  8. report         the self-contained HTML report (with complexity: per-layer network table)

Every rule's parameters are the config section it depends on, so changing one setting reruns
that stage and its descendants only. Each rule calls a sub-command of `python -m pipeline`.
"""

import json
import shlex
import sys
from pathlib import Path

from pipeline.config import evaluated_datasets, resolve_data_paths, validate_config
from pipeline.detectors import model_files, model_names, require_packages
from pipeline.figures import FIGURES
from pipeline.variants import variant_instances, sweep_name


configfile: Path(workflow.basedir) / "config" / "default.yaml"


validate_config(config)
require_packages([d["kind"] for d in config["detectors"].values()])
resolve_data_paths(config)

PIPELINE = f"{shlex.quote(sys.executable)} -m pipeline"
DATASETS = evaluated_datasets(config)  # test sets; a model may train on any dataset
VARIANTS = variant_instances(config)
MAIN_VARIANTS = list(config["variants"])
DATASET_VARIANTS = {
    name: config["datasets"][name].get("variants", list(VARIANTS)) for name in DATASETS
}
DETECTORS = config["detectors"]
MODELS = sorted({name for d in DETECTORS.values() for name in model_names(d)})
TRAINED_CASCADES = sorted({d["trained_cascade"] for d in DETECTORS.values() if "trained_cascade" in d})
SWEEP = config["shadow_sweep"]
# The smallest face every compared detector searches: smaller faces are counted per dataset.
SEARCH_MIN_SIZE = max(d.get("min_size", 0) for d in DETECTORS.values())
SHARDS = config["execution"]["detection_shards"]


def as_json(settings):
    return json.dumps(settings, sort_keys=True)


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    variant="|".join(v.replace(".", r"\.") for v in VARIANTS),
    detector="|".join(DETECTORS),
    model="[A-Za-z][A-Za-z0-9_]*",
    shard=r"\d+",


rule all:
    input:
        "results/report/index.html",


rule build_dataset:
    output:
        test="results/data/{dataset}/test.json",
        test_images=directory("results/data/{dataset}/test"),
        train="results/data/{dataset}/train.npz",
        backgrounds="results/data/{dataset}/train_backgrounds.json",
        background_images=directory("results/data/{dataset}/train_backgrounds"),
    params:
        settings=lambda wc: as_json(config["datasets"][wc.dataset]),
        out="results/data/{dataset}",
    log:
        "results/logs/build_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/build_dataset/{dataset}.tsv"
    shell:
        "{PIPELINE} build-dataset --settings {params.settings:q} --out {params.out} "
        "2> {log}"


rule make_variant:
    input:
        "results/data/{dataset}/test.json",
    output:
        manifest="results/variants/{dataset}/{variant}/manifest.json",
        images=directory("results/variants/{dataset}/{variant}/images"),
    params:
        settings=lambda wc: as_json(VARIANTS[wc.variant]),
        out="results/variants/{dataset}/{variant}",
    log:
        "results/logs/make_variant/{dataset}/{variant}.log",
    benchmark:
        "results/benchmarks/make_variant/{dataset}/{variant}.tsv"
    shell:
        "{PIPELINE} make-variant --manifest {input} --name {wildcards.variant} "
        "--settings {params.settings:q} --out {params.out} 2> {log}"


def training_inputs(section):
    """The training faces and face-free scenes of a ``models:`` / ``cascades:`` entry."""

    def inputs(wc):
        dataset = config[section][wc.model]["train_dataset"]
        return {
            "train": f"results/data/{dataset}/train.npz",
            "backgrounds": f"results/data/{dataset}/train_backgrounds.json",
        }

    return inputs


rule train_cnn:
    input:
        unpack(training_inputs("models")),
    output:
        "results/models/{model}.pt",
    params:
        settings=lambda wc: as_json(config["models"][wc.model]),
    threads: config["execution"]["training_threads"]
    log:
        "results/logs/train_cnn/{model}.log",
    benchmark:
        "results/benchmarks/train_cnn/{model}.tsv"
    shell:
        "{PIPELINE} train-cnn --settings {params.settings:q} --train {input.train} "
        "--backgrounds {input.backgrounds} --out {output} --threads {threads} "
        "2> {log}"


rule train_haar:
    input:
        unpack(training_inputs("cascades")),
    output:
        cascade="results/models/{model}.xml",
        history="results/models/{model}.stages.json",
    params:
        settings=lambda wc: as_json(config["cascades"][wc.model]),
    threads: config["execution"]["training_threads"]
    log:
        "results/logs/train_haar/{model}.log",
    benchmark:
        "results/benchmarks/train_haar/{model}.tsv"
    shell:
        "{PIPELINE} train-haar --settings {params.settings:q} --train {input.train} "
        "--backgrounds {input.backgrounds} --out {output.cascade} "
        "--history {output.history} --threads {threads} 2> {log}"


def detection_inputs(wc):
    return {
        "manifest": f"results/variants/{wc.dataset}/{wc.variant}/manifest.json",
        "models": model_files(DETECTORS[wc.detector]),
    }


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
        "{PIPELINE} detect --settings {params.settings:q} --manifest {input.manifest} "
        "{params.model} --name {wildcards.detector} --shard {wildcards.shard} "
        "--shards {params.shards} --out {output.detections} --timing {output.timing} "
        "--threads {threads} 2> {log}"


rule merge_detections:
    input:
        manifest="results/variants/{dataset}/{variant}/manifest.json",
        detections=expand(
            "results/detections/{{detector}}/{{dataset}}/{{variant}}/shard{shard}.json",
            shard=range(SHARDS),
        ),
        timings=expand(
            "results/timing/{{detector}}/{{dataset}}/{{variant}}/shard{shard}.json",
            shard=range(SHARDS),
        ),
    output:
        detections="results/detections/{detector}/{dataset}/{variant}.json",
        timing="results/timing/{detector}/{dataset}/{variant}.json",
    log:
        "results/logs/merge_detections/{detector}/{dataset}/{variant}.log",
    shell:
        "{PIPELINE} merge-detections --manifest {input.manifest} "
        "--detections {input.detections} --timings {input.timings} "
        "--detector {wildcards.detector} --dataset {wildcards.dataset} "
        "--variant {wildcards.variant} --out {output.detections} "
        "--timing-out {output.timing} 2> {log}"


def calibration_file(wc):
    """The detector's box calibration for this dataset, when the dataset names a fitting set."""
    source = config["datasets"][wc.dataset].get("calibration")
    return [f"results/calibration/{wc.detector}/{source}.json"] if source else []


rule calibrate:
    input:
        truth="results/variants/{dataset}/original/manifest.json",
        detections="results/detections/{detector}/{dataset}/original.json",
    output:
        "results/calibration/{detector}/{dataset}.json",
    log:
        "results/logs/calibrate/{detector}/{dataset}.log",
    shell:
        "{PIPELINE} calibrate --truth {input.truth} --detections {input.detections} "
        "--detector {wildcards.detector} --dataset {wildcards.dataset} --out {output} "
        "2> {log}"


rule evaluate:
    input:
        truth="results/variants/{dataset}/{variant}/manifest.json",
        detections="results/detections/{detector}/{dataset}/{variant}.json",
        calibration=calibration_file,
    output:
        "results/metrics/{detector}/{dataset}/{variant}.json",
    params:
        settings=as_json(config["evaluation"]),
        search_min_size=SEARCH_MIN_SIZE,
        calibration=lambda wc, input: (
            f"--calibration {input.calibration}" if input.calibration else ""
        ),
    log:
        "results/logs/evaluate/{detector}/{dataset}/{variant}.log",
    benchmark:
        "results/benchmarks/evaluate/{detector}/{dataset}/{variant}.tsv"
    shell:
        "{PIPELINE} evaluate --settings {params.settings:q} --truth {input.truth} "
        "--detections {input.detections} {params.calibration} "
        "--search-min-size {params.search_min_size} "
        "--detector {wildcards.detector} --dataset {wildcards.dataset} "
        "--variant {wildcards.variant} --out {output} 2> {log}"


RUNS = [
    f"{detector}/{dataset}/{variant}"
    for detector in DETECTORS
    for dataset in DATASETS
    for variant in DATASET_VARIANTS[dataset]
]


rule statistics:
    input:
        expand("results/metrics/{run}.json", run=RUNS),
    output:
        "results/summary/statistics.json",
    params:
        settings=as_json(
            {**config["statistics"], "fp_for_summary": config["report"]["fp_for_summary"]}
        ),
    log:
        "results/logs/statistics.log",
    benchmark:
        "results/benchmarks/statistics.tsv"
    shell:
        "{PIPELINE} statistics --settings {params.settings:q} --metrics {input} "
        "--out {output} 2> {log}"


rule summarise:
    input:
        metrics=expand("results/metrics/{run}.json", run=RUNS),
        timings=expand("results/timing/{run}.json", run=RUNS),
    output:
        csv=report("results/summary/summary.csv", category="Tables",
                   caption="pipeline/captions/summary.rst"),
        json="results/summary/summary.json",
    log:
        "results/logs/summarise.log",
    shell:
        "{PIPELINE} summarise --metrics {input.metrics} --timings {input.timings} "
        "--out-csv {output.csv} --out-json {output.json} 2> {log}"


# The example grid shows the first test dataset in the main variants it has.
EXAMPLE_VARIANTS = [v for v in MAIN_VARIANTS if v in DATASET_VARIANTS[DATASETS[0]]]

FIGURE_SETTINGS = {
    "datasets": DATASETS,
    "detectors": list(DETECTORS),
    "main_variants": MAIN_VARIANTS,
    "models": MODELS,
    "sweep": {
        "strengths": SWEEP["strengths"],
        "names": [sweep_name(SWEEP["variant"], s) for s in SWEEP["strengths"]],
    },
    "example_variants": EXAMPLE_VARIANTS,
    "haar_cascades": {
        name: d.get("cascade") or model_files(d)[0]
        for name, d in DETECTORS.items()
        if d["kind"] == "haar"
    },
    "example_images": config["report"]["example_images"],
    "fp_for_summary": config["report"]["fp_for_summary"],
}


rule figures:
    input:
        summary="results/summary/summary.json",
        statistics="results/summary/statistics.json",
        variants=expand(
            "results/variants/{dataset}/{variant}/manifest.json",
            dataset=DATASETS[:1],
            variant=EXAMPLE_VARIANTS,
        ),
        detections=expand(
            "results/detections/{detector}/{dataset}/{variant}.json",
            detector=DETECTORS,
            dataset=DATASETS[:1],
            variant=EXAMPLE_VARIANTS,
        ),
        models=expand("results/models/{model}.pt", model=MODELS),
        cascades=expand("results/models/{model}.xml", model=TRAINED_CASCADES),
    output:
        [
            report(f"results/figures/{name}", category="Figures",
                   caption=f"pipeline/captions/{name[:-4]}.rst")
            for name in FIGURES
        ],
    params:
        settings=as_json(FIGURE_SETTINGS),
    log:
        "results/logs/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    shell:
        "{PIPELINE} figures --settings {params.settings:q} --summary {input.summary} "
        "--statistics {input.statistics} "
        "--results results --out-dir results/figures 2> {log}"


rule complexity:
    output:
        "results/summary/complexity.json",
    log:
        "results/logs/complexity.log",
    shell:
        "{PIPELINE} complexity --out {output} 2> {log}"


rule report:
    input:
        summary="results/summary/summary.json",
        statistics="results/summary/statistics.json",
        complexity="results/summary/complexity.json",
        figures=expand("results/figures/{name}", name=FIGURES),
        cascades=expand("results/models/{model}.stages.json", model=TRAINED_CASCADES),
    output:
        "results/report/index.html",
    params:
        settings=as_json({**FIGURE_SETTINGS, "config": config}),
    log:
        "results/logs/report.log",
    shell:
        "{PIPELINE} report --settings {params.settings:q} --summary {input.summary} "
        "--statistics {input.statistics} --complexity {input.complexity} "
        "--figures {input.figures} --cascades {input.cascades} --out {output} 2> {log}"
