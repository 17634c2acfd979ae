"""The self-contained HTML results report: figures embedded, tables, findings, provenance."""

from __future__ import annotations

import base64
import html
import importlib.metadata
import json
import logging
import platform
from pathlib import Path
from typing import Any

from pipeline.io import atomic_open, read_json

LOG = logging.getLogger(__name__)

PACKAGES = ["numpy", "opencv-python-headless", "torch", "scikit-learn", "scikit-image",
            "snakemake", "matplotlib"]

CAPTIONS_DIR = Path(__file__).parent / "captions"


def caption(figure: str | Path) -> str:
    """The caption of a figure (shared with ``snakemake --report``): captions/<stem>.rst."""
    path = CAPTIONS_DIR / f"{Path(figure).stem}.rst"
    return path.read_text().strip() if path.exists() else Path(figure).stem


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def findings(settings: dict[str, Any], runs: dict[tuple[str, str, str], dict]) -> list[str]:
    """Sentences that state, per dataset and altered variant, what the numbers show."""
    sentences = []
    detectors = settings["detectors"]
    for dataset in settings["datasets"]:
        for variant in settings["main_variants"]:
            if variant == "original":
                continue
            parts = []
            for detector in detectors:
                run, base = runs.get((detector, dataset, variant)), runs.get(
                    (detector, dataset, "original"))
                if run is None or base is None:
                    continue
                parts.append(f"{detector} AP {_fmt(base['average_precision'])} → "
                             f"{_fmt(run['average_precision'])} "
                             f"(keeps {_fmt(100 * (run.get('relative_ap') or 0), 0)}%)")
            if not parts:
                continue
            kept = {d: runs[(d, dataset, variant)].get("relative_ap") for d in detectors
                    if (d, dataset, variant) in runs}
            ap = {d: runs[(d, dataset, variant)]["average_precision"] for d in detectors
                  if (d, dataset, variant) in runs}
            best = max(ap, key=lambda d: ap[d])
            robust = max((d for d in kept if kept[d] is not None), key=lambda d: kept[d],
                         default=None)
            sentence = (f"{dataset}, {variant}: " + "; ".join(parts) + f". Higher AP on "
                        f"{variant}: {best}.")
            if robust is not None:
                sentence += f" Smaller relative loss: {robust}."
            sentences.append(sentence)
    sentences.append(
        "These are point estimates on the test images listed in the table: no confidence "
        "intervals or significance tests are computed yet, so small differences may be noise.")
    return sentences


def _table(rows: list[dict[str, Any]], fp_points: list[int]) -> str:
    head = ["detector", "dataset", "variant", "images", "faces", "detections", "AP",
            "AP / AP original"] + [f"DR @ {n} FP" for n in fp_points] + ["ms / image"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        cells = [r["detector"], r["dataset"], r["variant"], r["n_images"], r["n_faces"],
                 r["n_detections"], _fmt(r["average_precision"]), _fmt(r.get("relative_ap"))]
        cells += [_fmt(r["detection_rate_at_fp"].get(str(n))) for n in fp_points]
        cells.append(_fmt(r.get("ms_per_image_mean"), 1))
        lines.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                     + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;line-height:1.45}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}
th{background:#eee}img{max-width:100%}figure{margin:1.5em 0}figcaption{color:#444}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}"""


def write_report(settings: dict[str, Any], summary_path: str | Path, figures: list[str],
                 out: str | Path) -> None:
    summary = read_json(summary_path)
    runs = {(r["detector"], r["dataset"], r["variant"]): r for r in summary["runs"]}
    main = [r for r in summary["runs"] if r["variant"] in settings["main_variants"]]
    sweep = [r for r in summary["runs"] if r["variant"] not in settings["main_variants"]]
    config = settings["config"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>Viola-Jones vs CNN: results</title>", f"<style>{STYLE}</style></head><body>",
        "<h1>Viola-Jones vs CNN face detection under shadow and cartoon variants</h1>",
        "<p>Claim under test: Haar features are fixed light/dark rectangle contrasts, so a "
        "Viola-Jones cascade should break when part of a face is shadowed or when the face is "
        "flat-shaded like a cartoon, while a CNN, which learns its own filters, should hold "
        "up. Both detectors run on the same test images in each variant, with the same "
        "ground-truth boxes; IoU threshold "
        f"{config['evaluation']['iou_threshold']}.</p>",
        "<h2>Findings</h2><ul>",
        *[f"<li>{html.escape(s)}</li>" for s in findings(settings, runs)],
        "</ul><h2>Main variants</h2>", _table(main, summary["fp_points"]),
        "<h2>Shadow strength sweep</h2>", _table(sweep, summary["fp_points"]),
        "<h2>Figures</h2>",
    ]
    for figure in figures:
        path = Path(figure)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{path.stem}' src='data:image/png;base64,{data}'>"
                     f"<figcaption><b>{path.stem}</b>: {html.escape(caption(path))}"
                     "</figcaption></figure>")
    parts += [
        "<h2>Provenance</h2><h3>Package versions</h3><pre>",
        html.escape(json.dumps(package_versions(), indent=1)),
        "</pre><h3>Configuration</h3><pre>", html.escape(json.dumps(config, indent=1)),
        "</pre></body></html>",
    ]
    with atomic_open(out, "w") as handle:
        handle.write("\n".join(parts))
    LOG.info("report written to %s", out)
