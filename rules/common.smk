"""Names derived from the config that the rules share, and their input functions."""

import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError

from pipeline import paths
from pipeline.commands import training_threads
from pipeline.config import arm_training_sets
from pipeline.data.datasets import dataset_inputs
from pipeline.data.roles import evaluated_datasets
from pipeline.data.variants import BASELINE_VARIANT, sweep_name, variant_instances
from pipeline.detection.detectors import (
    draws,
    model_files,
    model_names,
    role,
    search_min_size,
    trained_models,
)
from pipeline.detection.detectors.haar import cascade_file
from pipeline.evaluation.statistics import statistics_settings
from pipeline.report.figures import FIGURES
from pipeline.tuning.operating_point import tune_sets

# Every stage is a command of the package's one CLI, `python -m pipeline`; each rule file calls
# its own stage's part of it, `$PYTHON -m pipeline.<stage> <command>`, where $PYTHON is the
# Python that runs Snakemake (so no virtual environment needs to be active).
shell.prefix(f"set -euo pipefail; PYTHON={shlex.quote(sys.executable)}; ")

DATASETS = evaluated_datasets(config)  # tune and test sets; a model may train on any dataset
VARIANTS = variant_instances(config)
MAIN_VARIANTS = list(config["variants"])
DATASET_VARIANTS = {
    name: config["datasets"][name].get("variants", list(VARIANTS)) for name in DATASETS
}
DETECTORS = config["detectors"]
MODELS = sorted({name for d in DETECTORS.values() for name in model_names(d)})
TRAINED_CASCADES = sorted({name for d in DETECTORS.values()
                           for section, name in trained_models(d) if section == "cascades"})
SWEEP = config["shadow_sweep"]
# The smallest face every compared detector searches: smaller faces are counted per dataset.
SEARCH_MIN_SIZE = search_min_size(DETECTORS)
SHARDS = config["execution"]["detection_shards"]
# Threads per training job: a number, or `auto` (half of --cores, so two trainings run at once).
try:
    GIVEN_CORES = workflow.cores
except WorkflowError:  # no --cores (e.g. --unlock, --list-rules, a remote executor)
    GIVEN_CORES = None
TRAINING_THREADS = training_threads(config["execution"]["training_threads"], GIVEN_CORES)
# Every trained model is trained once per training seed; a detector that needs one is run once
# per seed (its draws: seed0, seed1, ...), one that trains nothing once (fixed).
SEEDS = config["seeds"]
DRAWS = {name: draws(d, SEEDS) for name, d in DETECTORS.items()}
FIRST_SEED = SEEDS[0]  # the draw the example figures, learned filters and cascade tables show
# Every detector draw x test set x variant it is tested in.
RUNS = [
    f"{detector}/{draw}/{dataset}/{variant}"
    for detector in DETECTORS
    for draw in DRAWS[detector]
    for dataset in DATASETS
    for variant in DATASET_VARIANTS[dataset]
]


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    variant="|".join(v.replace(".", r"\.") for v in VARIANTS),
    detector="|".join(DETECTORS),
    draw=rf"seed\d+|{paths.UNTRAINED}",
    seed=r"\d+",
    model="[A-Za-z][A-Za-z0-9_]*",
    shard=r"\d+",


def as_json(settings):
    return json.dumps(settings, sort_keys=True)


def training_inputs(section):
    """The training faces and face-free scenes of a ``models:`` / ``cascades:`` entry."""

    def inputs(wc):
        dataset = config[section][wc.model]["train_dataset"]
        return {
            "train": paths.training_faces(dataset),
            "backgrounds": paths.training_scenes(dataset),
        }

    return inputs


def draw_models(detector, draw):
    """The trained files of one draw of a detector (none for an untrained one)."""
    seed = paths.seed_of(draw)
    return [] if seed is None else model_files(DETECTORS[detector], paths.models_folder(seed))


# Operating points chosen on tune sets (tuning:), per detector draw, and the sets they use.
TUNING = config["tuning"]
TUNE_SETS = {name: tune_sets(config, name) for name in TUNING}


def tuning_inputs(wc):
    return {
        "truth": [paths.variant_manifest(d, BASELINE_VARIANT) for d in TUNE_SETS[wc.detector]],
        "models": draw_models(wc.detector, wc.draw),
        "cascade": user_cascades([wc.detector]),
    }


def tuned_choice(wc):
    """The detector draw's operating point file, when the detector is tuned."""
    return [paths.tuning(wc.detector, wc.draw)] if wc.detector in TUNING else []


def detection_inputs(wc):
    return {
        "manifest": paths.variant_manifest(wc.dataset, wc.variant),
        "tuning": tuned_choice(wc),
        "models": draw_models(wc.detector, wc.draw),
        "cascade": user_cascades([wc.detector]),  # read through the settings' path
    }


def user_cascades(detectors):
    """The cascade XML files that ``detectors`` name by path (not OpenCV's bundled ones)."""
    return [path for d in detectors if (path := cascade_file(DETECTORS[d])) is not None]


def calibration_file(wc):
    """The detector draw's box calibration for this dataset, when the dataset names a fitting
    set (each training draw is calibrated on its own detections)."""
    source = config["datasets"][wc.dataset].get("calibration")
    return [paths.box_calibration(wc.detector, wc.draw, source)] if source else []


# The config files of this run in the order they were merged: the Snakefile's default, then
# the --configfile overlays; named relative to the working folder where they lie inside it.
CONFIG_FILES = list(dict.fromkeys(  # each once: the default may also be given as an overlay
    os.path.relpath(f) if not os.path.relpath(f).startswith("..") else str(f)
    for f in sorted(workflow.configfiles,
                    key=lambda f: f in workflow.config_settings.configfiles)
))

# The training faces of each matched arm of the verdict table (the report states their count).
ARM_TRAINING = {
    arm: paths.training_faces(dataset)
    for arm, detectors in config["report"]["arms"].items()
    for dataset in arm_training_sets(config, detectors)
}

# The example figures show the first test dataset in the main variants it has; these are
# the files they draw (passed to the figures stage as they are listed as its inputs).
EXAMPLE_VARIANTS = [v for v in MAIN_VARIANTS if v in DATASET_VARIANTS[DATASETS[0]]]
FIGURE_INPUTS = {
    "variants": {
        v: paths.variant_manifest(DATASETS[0], v) for v in EXAMPLE_VARIANTS
    },
    "detections": {
        detector: {v: paths.detections(detector, DRAWS[detector][0], DATASETS[0], v)
                   for v in EXAMPLE_VARIANTS}
        for detector in DETECTORS
    },
    "models": {name: paths.checkpoint(name, paths.models_folder(FIRST_SEED)) for name in MODELS},
}

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
        name: d.get("cascade") or model_files(d, paths.models_folder(FIRST_SEED))[0]
        for name, d in DETECTORS.items()
        if role(d) == "cascade"
    },
    "example_images": config["report"]["example_images"],
    "fp_for_summary": config["report"]["fp_for_summary"],
    "inputs": FIGURE_INPUTS,
}
