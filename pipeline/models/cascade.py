"""A stump-based Haar cascade: OpenCV's cascade XML read and written, windows classified the
way ``cv2.CascadeClassifier`` classifies them.

OpenCV semantics reproduced here (``cascadedetect``): a stump sends a window to its left leaf
when the feature value is below the threshold, else to its right leaf; a stage passes when the
sum of its leaves (float leaves, double sum, in order) is at least the stage threshold less
1e-5 (in float); a window is a detection when it passes every stage.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import atomic_open
from pipeline.models.haar_features import MAX_RECTS, feature_values, variance_norm

STAGE_THRESHOLD_EPS = np.float32(1e-5)


@dataclass
class Stump:
    """One weak classifier: value of ``feature`` < ``threshold`` -> ``left``, else ``right``."""

    feature: int
    threshold: float
    left: float
    right: float

    def leaves(self, values: np.ndarray) -> np.ndarray:
        """The leaf each window lands in, (N,) float64, from its feature values (N,) float32;
        compared and summed as OpenCV does (float threshold and leaves)."""
        below = values < np.float32(self.threshold)
        return np.where(below, np.float32(self.left), np.float32(self.right)).astype(np.float64)


@dataclass
class Stage:
    stumps: list[Stump]
    threshold: float


@dataclass
class Cascade:
    """Window (width, height), features (K, 3, 5) rectangles, and the stages in order."""

    window: tuple[int, int]
    features: np.ndarray
    stages: list[Stage] = field(default_factory=list)

    @property
    def n_weak(self) -> int:
        return sum(len(stage.stumps) for stage in self.stages)

    def compact(self) -> Cascade:
        """The same cascade holding only the features its stumps use, in first-use order."""
        used: dict[int, int] = {}
        for stage in self.stages:
            for stump in stage.stumps:
                used.setdefault(stump.feature, len(used))
        stages = [Stage([Stump(used[s.feature], s.threshold, s.left, s.right)
                         for s in stage.stumps], stage.threshold) for stage in self.stages]
        features = self.features[list(used)] if used else self.features[:0]
        return Cascade(self.window, features, stages)

    def evaluate(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Classify window-sized patches (N, H, W) uint8 as OpenCV would.

        Returns the number of stages each window passed, (N,) int (``len(stages)`` = face;
        -1 = not classified, std <= 10), and the leaf sum of the last stage it was
        evaluated on, (N,) float64 (OpenCV's level weight for detections).
        """
        patches = np.asarray(patches)
        if patches.shape[1:] != (self.window[1], self.window[0]):
            raise ValueError(f"patches are {patches.shape[1:]}, the cascade window is "
                             f"{self.window[1]}x{self.window[0]} (height x width)")
        _, valid = variance_norm(patches)
        passed = np.where(valid, 0, -1)
        score = np.zeros(len(patches))
        index = np.flatnonzero(valid)  # windows still in the cascade
        values = feature_values(patches[index], self.features) if len(self.features) else None
        for stage in self.stages:
            if index.size == 0:
                break
            sums = stage_sums(stage, values)
            score[index] = sums
            ok = sums >= stage_threshold(stage.threshold)
            passed[index[ok]] += 1
            index, values = index[ok], values[:, ok]
        return passed, score

    def write_xml(self, path: str | Path, params: dict[str, Any] | None = None) -> None:
        """Save in OpenCV's cascade format (stageType BOOST, featureType HAAR)."""
        root = ET.Element("opencv_storage")
        cascade = ET.SubElement(root, "cascade")
        for key, value in [("stageType", "BOOST"), ("featureType", "HAAR"),
                           ("height", self.window[1]), ("width", self.window[0])]:
            ET.SubElement(cascade, key).text = str(value)
        stage_params = ET.SubElement(cascade, "stageParams")
        for key, value in [("boostType", "DAB"), ("maxDepth", 1),
                           ("maxWeakCount", max((len(s.stumps) for s in self.stages),
                                                default=0))]:
            ET.SubElement(stage_params, key).text = str(value)
        feature_params = ET.SubElement(cascade, "featureParams")
        for key, value in [("maxCatCount", 0), ("featSize", 1), ("mode", "BASIC")]:
            ET.SubElement(feature_params, key).text = str(value)
        ET.SubElement(cascade, "stageNum").text = str(len(self.stages))
        stages = ET.SubElement(cascade, "stages")
        for stage in self.stages:
            node = ET.SubElement(stages, "_")
            ET.SubElement(node, "maxWeakCount").text = str(len(stage.stumps))
            ET.SubElement(node, "stageThreshold").text = _float(stage.threshold)
            weak = ET.SubElement(node, "weakClassifiers")
            for stump in stage.stumps:
                item = ET.SubElement(weak, "_")
                ET.SubElement(item, "internalNodes").text = (
                    f"0 -1 {stump.feature} {_float(stump.threshold)}")
                ET.SubElement(item, "leafValues").text = (
                    f"{_float(stump.left)} {_float(stump.right)}")
        features = ET.SubElement(cascade, "features")
        for rects in self.features:
            rect_node = ET.SubElement(ET.SubElement(features, "_"), "rects")
            for x, y, w, h, weight in rects:
                if weight != 0:
                    ET.SubElement(rect_node, "_").text = (
                        f"{int(x)} {int(y)} {int(w)} {int(h)} {_float(weight)}")
        if params:
            root.insert(0, ET.Comment(" trained by pipeline.training.train_cascade: "
                                      + " ".join(f"{k}={v}" for k, v in params.items()) + " "))
        ET.indent(root)
        with atomic_open(path, "wb") as handle:
            ET.ElementTree(root).write(handle, encoding="utf-8", xml_declaration=True)

    @classmethod
    def read_xml(cls, path: str | Path) -> Cascade:
        """Load a stump-based HAAR cascade in OpenCV's current XML format.

        Raises ``ValueError`` naming the file when it is not one (old format, LBP, trees).
        """
        window, features, raw_stages = parse_cascade_xml(path)
        stages = []
        for threshold, weak in raw_stages:
            if any(len(nodes) != 4 or len(leaves) != 2 for nodes, leaves in weak):
                raise ValueError(f"{path}: only stump cascades (one split per weak classifier) "
                                 "can be evaluated here")
            stages.append(Stage([Stump(int(nodes[2]), nodes[3], *leaves)
                                 for nodes, leaves in weak], threshold))
        return cls(window, features, stages)


RawStage = tuple[float, list[tuple[list[float], list[float]]]]


def parse_cascade_xml(path: str | Path) -> tuple[tuple[int, int], np.ndarray, list[RawStage]]:
    """Window (width, height), features (K, 3, 5) and, per stage, its threshold and each weak
    classifier's internal nodes and leaf values, from an OpenCV HAAR cascade XML.

    Raises ``ValueError`` naming the file when it is not one (old format, LBP, tilted).
    """
    path = Path(path)
    try:
        cascade = ET.parse(path).getroot().find("cascade")
        if cascade.findtext("featureType").strip() != "HAAR":
            raise ValueError("featureType is not HAAR")
        window = (int(cascade.findtext("width")), int(cascade.findtext("height")))
        features = np.zeros((len(cascade.find("features")), MAX_RECTS, 5), np.float32)
        for i, feature in enumerate(cascade.find("features")):
            if int(feature.findtext("tilted") or 0):
                raise ValueError("tilted features are not supported")
            for j, rect in enumerate(feature.find("rects")):
                features[i, j] = [float(v) for v in rect.text.split()]
        stages = [(float(stage.findtext("stageThreshold")),
                   [([float(v) for v in weak.findtext("internalNodes").split()],
                     [float(v) for v in weak.findtext("leafValues").split()])
                    for weak in stage.find("weakClassifiers")])
                  for stage in cascade.find("stages")]
    except (ET.ParseError, AttributeError, IndexError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not an OpenCV HAAR cascade in the current XML format "
                         f"({error})") from error
    return window, features, stages


def stage_features(path: str | Path, stage: int = 0) -> tuple[tuple[int, int], np.ndarray]:
    """Window (width, height) and the features (K, 3, 5) that one stage's weak classifiers
    split on first, in order (any HAAR cascade, stumps or trees)."""
    window, features, stages = parse_cascade_xml(path)
    return window, features[[int(nodes[2]) for nodes, _ in stages[stage][1]]]


def stage_threshold(threshold: float) -> np.float32:
    """The threshold OpenCV compares a stage sum with: float(threshold) - 1e-5 in float."""
    return np.float32(np.float32(threshold) - STAGE_THRESHOLD_EPS)


def stage_sums(stage: Stage, values: np.ndarray) -> np.ndarray:
    """Leaf sums of one stage, (N,) float64, from feature values (K, N) indexed by stump."""
    total = np.zeros(values.shape[1])
    for stump in stage.stumps:
        total += stump.leaves(values[stump.feature])
    return total


def _float(value: float) -> str:
    """Shortest text that reads back as the same float32."""
    return repr(float(np.float32(value)))
