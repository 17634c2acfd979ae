"""The report's tables and lists as plain text cells (the template escapes and lays them out):
results per run, evaluation protocol, image groups, trained cascades, network complexity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.data.variants import BASELINE_VARIANT
from pipeline.evaluation.contracts import Statistics
from pipeline.report.findings import cnn_of_pair, share_comparison
from pipeline.report.numbers import ci, fmt
from pipeline.report.verdicts import reference_detectors


@dataclass
class Table:
    head: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Block:
    """A titled part of a section: a paragraph, a table and a list, each optional."""

    title: str = ""
    text: str = ""
    table: Table | None = None
    items: list[str] = field(default_factory=list)
    folded: bool = False  # shown closed (<details>)


def run_table(rows: list[dict[str, Any]], fp_points: list[int]) -> Table:
    """Summary rows: counts, AP, share kept, detection rates, false positives, speed; with
    several training seeds, means over them and each seed's AP."""
    seeded = any(r.get("n_seeds", 1) > 1 for r in rows)
    table = Table(["detector", "dataset", "variant", "images", "faces", "detections", "AP"]
                  + (["AP per seed"] if seeded else []) + [f"AP / AP {BASELINE_VARIANT}"]
                  + [f"DR @ {n} FP" for n in fp_points] + ["FP / image", "ms / image"])
    for r in rows:
        table.rows.append(
            [r["detector"], r["dataset"], r["variant"], r["n_images"], r["n_faces"],
             fmt(r["n_detections"], 1), fmt(r["average_precision"])]
            + ([r.get("ap_per_seed", "")] if seeded else []) + [fmt(r.get("relative_ap"))]
            + [fmt(r["detection_rate_at_fp"].get(str(n))) for n in fp_points]
            + [fmt(r.get("false_positives_per_image"), 2), fmt(r.get("ms_per_image_mean"), 1)])
    return table


def scored_faces(runs: list[dict[str, Any]]) -> list[str]:
    """Per dataset: faces too small to score (excluded), and faces smaller than the smallest
    face every compared detector searches (misses by construction unless excluded)."""
    lines, seen = [], set()
    for run in runs:
        if run["dataset"] in seen or run["variant"] != BASELINE_VARIANT:
            continue
        seen.add(run["dataset"])
        name = run["dataset"]
        if run.get("negatives_only"):
            lines.append(f"{name}: a face-free test set (negatives only): detectors are "
                         "compared by false positives per image; AP and detection rates are "
                         "undefined.")
            continue
        excluded, below = run.get("n_faces_excluded", 0), run.get("n_faces_below_search_size", 0)
        text = f"{name}: {run['n_faces']} of {run['n_faces'] + excluded} faces scored"
        if excluded:
            text += (f"; {excluded} smaller than evaluation.min_face_size "
                     f"{run['min_face_size']:g} px (sqrt of box area) excluded, counted "
                     "neither as misses nor, when detected, as false positives")
        if below:
            text += (f"; {below} faces are smaller than {run['search_min_size']:g} px, the "
                     "smallest face every compared detector searches"
                     + ("" if excluded else ", and count as misses for the detectors that "
                        "cannot find them"))
        elif run.get("search_min_size"):
            text += (f"; none is smaller than {run['search_min_size']:g} px (sqrt of box area), "
                     "the smallest face every compared detector searches")
        lines.append(f"{text}.")
    return lines


def protocol(runs: list[dict[str, Any]]) -> list[str]:
    """Which faces were scored, and which matching criterion and box calibration each dataset
    and detector used."""
    lines, seen = scored_faces(runs), set()
    for run in runs:
        key = (run["detector"], run["dataset"])
        if key in seen:
            continue
        seen.add(key)
        criterion = run.get("criterion", {})
        if criterion.get("kind") == "landmarks":
            rule = (f"landmark criterion (eyes and mouth centre inside, size within "
                    f"{criterion['size_factor']:g}x) for {criterion['faces_judged_by_landmarks']}"
                    f" faces with landmarks, IoU >= {criterion['iou_threshold']:g} otherwise")
        else:
            rule = f"IoU >= {criterion.get('iou_threshold', 'n/a')}"
        calibration = run.get("box_calibration")
        boxes = ("boxes as the detector draws them" if not calibration else
                 f"boxes calibrated for AP on {calibration['fitted_on']} ("
                 + ("" if run.get("seed") is None else f"training seed {run['seed']}: ")
                 + f"AP there, where it was chosen, "
                 f"{calibration['average_precision_uncalibrated']:.3f} as drawn -> "
                 f"{calibration['average_precision']:.3f}; centre shift "
                 f"{calibration['dx']:+.3f} w, {calibration['dy']:+.3f} h; size "
                 f"x{calibration['sw']:.3f}, x{calibration['sh']:.3f})")
        lines.append(f"{run['detector']} on {run['dataset']}: {rule}; {boxes}.")
    return lines


def group_blocks(config: dict[str, Any], statistics: Statistics,
                 leave_out: frozenset[str] = frozenset()) -> list[Block]:
    """Per grouped test set (e.g. Yale B light-angle bins): each detector's AP and share of
    the baseline group's AP kept per group; what each has already lost in the baseline group;
    the CNN-vs-Haar share-kept comparison per group. Sets in ``leave_out`` (tune sets) are
    left out."""
    runs = [r for r in statistics.groups.runs if r.dataset not in leave_out]
    references = reference_detectors(config)
    blocks = []
    for dataset, variant in sorted({(r.dataset, r.variant) for r in runs},
                                   key=lambda k: (k[0], k[1] != BASELINE_VARIANT, k[1])):
        rows = [r for r in runs if (r.dataset, r.variant) == (dataset, variant)]
        baseline = rows[0].baseline_group
        unit = statistics.resampling.get(dataset)
        resampled_unit = unit.unit if unit else "image"
        detectors = list(dict.fromkeys(r.detector for r in rows))
        cell = {(r.detector, r.group): r for r in rows}
        table = Table(["group", "images"] + [f"{d}: AP" for d in detectors]
                      + [f"{d}: share kept" for d in detectors])
        for group in dict.fromkeys(r.group for r in rows):
            entries = [cell[d, group] for d in detectors]
            table.rows.append([group, entries[0].n_images]
                              + [ci(e.average_precision) for e in entries]
                              + [ci(e.relative_ap, percent=True) if group != baseline
                                 else "(baseline)" for e in entries])
        items = []
        for detector in detectors:
            ap = cell[detector, baseline].average_precision
            if ap is not None and ap.estimate is not None:
                items.append(f"{detector} already loses {fmt(1 - ap.estimate)} of AP in the "
                             f"baseline group ({baseline}, AP {fmt(ap.estimate)}), before the "
                             "light moves: that loss is the canvas, the crop or the detector, "
                             "not the shadow, and the shares kept are measured from it.")
        for test in statistics.groups.comparisons:
            cnn = cnn_of_pair(config, test.a, test.b)
            if ((test.dataset, test.variant) != (dataset, variant) or test.relative_ap is None
                    or cnn is None
                    or test.a in references or test.b in references):
                continue
            text = (f"{test.group}, {test.a} vs {test.b}: "
                    + share_comparison(test, cnn, statistics, f"{baseline} group"))
            permutation = test.relative_ap_permutation
            if permutation and permutation["p_value"] is not None:
                kind = "exact" if permutation["exact"] else "sampled"
                text += (f" Beside the bootstrap, a {kind} permutation test over "
                         f"{permutation['units']} {resampled_unit} units (each swaps whole "
                         f"units between the two detectors; {permutation['permutations']} "
                         f"patterns): p = {fmt(permutation['p_value'])}.")
            items.append(text)
        resampled = (f"{unit.unit} units ({unit.n_units} units, {unit.n_images} images)"
                     if unit else "image units")
        title = dataset if variant == BASELINE_VARIANT else f"{dataset}, {variant}"
        blocks.append(Block(title, f"Baseline group: {baseline}; share kept = AP in a group "
                            f"/ AP in the baseline group. Intervals resample {resampled}.",
                            table, items))
    return blocks


def cascade_blocks(histories: dict[str, dict[str, Any]]) -> list[Block]:
    """Per trained cascade: training set-up, time and one row per stage."""
    blocks = []
    for name, record in histories.items():
        stages, setup = record["stages"], record["settings"]
        weak = sum(row["weak_classifiers"] for row in stages)
        text = (f"{name}: trained on {setup['train_dataset']} ({setup['window']}x"
                f"{setup['window']} window, {setup['max_features'] or 'all'} candidate "
                f"features, device {record['device']}) in {record['train_seconds']:.0f} s: "
                f"{len(stages)} stages, {weak} weak classifiers. Stage targets: detection rate "
                f"{setup['stage_detection_rate']}, false positive rate "
                f"{setup['stage_false_positive_rate']}; overall false positive target "
                f"{setup['target_false_positive_rate']:g}. Rates are on each stage's own "
                "training windows (negatives: scene windows the earlier stages accept).")
        table = Table(["stage", "weak classifiers", "DR", "FPR", "overall DR", "overall FPR",
                       "positives", "negatives", "seconds"])
        for row in stages:
            table.rows.append([row["stage"], row["weak_classifiers"],
                               fmt(row["detection_rate"], 4), fmt(row["false_positive_rate"], 4),
                               fmt(row["overall_detection_rate"], 4),
                               f"{row['overall_false_positive_rate']:.2e}", row["positives"],
                               row["negatives"], f"{row['seconds']:.1f}"])
        blocks.append(Block(name, text, table))
    return blocks


def tuning_table(records: list[dict[str, Any]]) -> Table | None:
    """One row per tuned detector draw: the tune sets, the choice, its mean tune AP and every
    candidate's (``results/tuning/`` records); None when nothing was tuned."""
    if not records:
        return None
    table = Table(["detector", "seed", "tuned on", "chosen", "mean tune AP", "every candidate"])
    for record in records:
        others = "; ".join(
            ", ".join(f"{k} {v}" for k, v in row["settings"].items()) + f": {fmt(row['score'])}"
            for row in record["candidates"])
        table.rows.append([record["detector"], "" if record.get("seed") is None else
                           record["seed"], ", ".join(record["tune_sets"]),
                           ", ".join(f"{k} {v}" for k, v in record["choice"].items()),
                           fmt(record["score"]), others])
    return table


def complexity_blocks(complexity: dict[str, Any] | None) -> list[Block]:
    """Totals per architecture, then (folded) the per-layer tables."""
    if not complexity:
        return []
    totals = Table(["architecture", "window", "parameters", "multiply-adds",
                    "activation memory"])
    blocks = [Block(table=totals)]
    for name, table in complexity["architectures"].items():
        totals.rows.append([name, f"{table['window']}x{table['window']}",
                            f"{table['inference_parameters']:,}",
                            f"{table['total_multiply_adds']:,}",
                            f"{table['total_activation_bytes'] / 1024:.1f} KiB"])
        layers = Table(["layer", "type", "output (C x H x W)", "parameters", "multiply-adds",
                        "activations (bytes)"])
        layers.rows = [[row["layer"], row["type"], " x ".join(map(str, row["output"])),
                        f"{row['parameters']:,}", f"{row['multiply_adds']:,}",
                        f"{row['activation_bytes']:,}"] for row in table["layers"]]
        blocks.append(Block(f"{name}: layer by layer", table=layers, folded=True))
    return blocks
