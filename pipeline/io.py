"""File input/output: atomic writes, JSON, images and logging.

Every output is written to a temporary file in the target folder and renamed into place, so a
stage killed half-way never leaves a half-written file that a later stage would trust. Outputs
get the permissions a plain ``open()`` gives under the current umask (``mkstemp`` alone would
make them private, 0600). JSON is strict: undefined numbers (NaN, infinities) are written as
``null``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
from tqdm import tqdm

LOG = logging.getLogger("pipeline")


def setup_logging(log_file: str | None = None, level: int = logging.INFO) -> None:
    """Log to stderr and, when given, to ``log_file`` (the Snakemake ``log:`` file)."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def progress(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A tqdm progress bar; redrawn at most every 10 s when stderr is a log file, not a
    terminal, so that logs stay readable."""
    kwargs.setdefault("mininterval", 0.1 if sys.stderr.isatty() else 10.0)
    return tqdm(iterable, **kwargs)


def current_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    The file ends with mode ``0o666 & ~umask``, as ``open(path, "w")`` would create it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _sibling_folder(path: Path) -> Iterator[Path]:
    """A new hidden temporary folder beside ``path`` (mode as ``mkdir`` gives it), removed
    with whatever it still holds when the block ends, however it ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o777 & ~current_umask())
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary sibling folder to fill; it replaces ``path`` only when the block succeeds,
    so a failed stage leaves no partly written folder behind. Mode as ``mkdir`` gives it."""
    path = Path(path)
    with _sibling_folder(path) as tmp:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)


# The file that marks a folder as the pipeline's own output folder (check_output_folder).
OUTPUT_MARK = ".facecompare-output"


def check_output_folder(folder: str | Path) -> Path:
    """``folder`` if a stage may replace what is in it: it does not exist, is empty, or holds
    :data:`OUTPUT_MARK` (the pipeline wrote it). A folder that holds anything else is the
    user's (an ``--out`` pointed at their data): ``FileExistsError`` naming it."""
    folder = Path(folder)
    if folder.is_dir() and not (folder / OUTPUT_MARK).exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder}: this folder holds files the pipeline did not write "
                              f"(it has no {OUTPUT_MARK}); a stage replaces folders in its "
                              "output folder, so give a new or empty one")
    return folder


def mark_output_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and mark it as the pipeline's (:data:`OUTPUT_MARK`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mark = folder / OUTPUT_MARK
    if not mark.exists():
        mark.write_text("Written by the facecompare pipeline: its stages replace what is in "
                        "this folder when they rerun.\n")
    return folder


@contextlib.contextmanager
def staged_outputs(out_dir: str | Path) -> Iterator[Path]:
    """A temporary sibling folder of ``out_dir`` to write a stage's outputs into; when the
    block succeeds each entry is moved into ``out_dir`` (replacing an entry of the same name,
    leaving others alone), else it is removed: a failed stage leaves no partial or invalid
    output behind. ``out_dir`` must be new, empty or the pipeline's
    (:func:`check_output_folder`). The sibling is at the same depth as ``out_dir``, so
    relative paths written into the outputs stay valid after the move."""
    out_dir = check_output_folder(out_dir)
    with _sibling_folder(out_dir) as staging:
        yield staging
        mark_output_folder(out_dir)
        for entry in sorted(staging.iterdir()):
            target = out_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)


def json_ready(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by ``None`` (JSON ``null``)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: json_ready(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_ready(value) for value in data]
    return data


def write_json(path: str | Path, data: Any) -> None:
    """Strict JSON: undefined values (NaN, infinities) become ``null``."""
    with atomic_open(path) as handle:
        json.dump(json_ready(data), handle, indent=1, sort_keys=False, allow_nan=False)
        handle.write("\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig") as handle:  # a byte-order mark is not JSON
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def read_gray(path: str | Path) -> np.ndarray:
    """Read any image OpenCV decodes as 8-bit grayscale, shape (H, W), dtype uint8, the way
    an image viewer shows it: EXIF orientation applied.

    16-bit images are scaled to 8 bits, colour and alpha are dropped. Raises
    ``FileNotFoundError`` naming the file when it is missing or not a file, ``PermissionError``
    when it cannot be read, and ``ValueError`` naming it when it is empty, truncated, not a
    decodable image, or of a pixel type whose intensity range is not known (floating point,
    signed or 32-bit integers: is 1.0 white, or 255?).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ValueError(f"{path}: image file is empty")
    # Not IMREAD_UNCHANGED, which ignores the EXIF orientation (a phone photo would be read
    # sideways, its annotated boxes on the wrong pixels); ANYDEPTH keeps 16-bit depth.
    image = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise ValueError(f"{path}: not a decodable image (corrupt, truncated or not an image)")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: {image.dtype} pixels (values {float(image.min()):g} to "
                         f"{float(image.max()):g}) have no known intensity range; convert the "
                         "image to 8- or 16-bit unsigned integers")
    return to_gray_uint8(image)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W) resampled to ``size`` = (width, height): by area averaging when no
    side grows, bilinearly otherwise. Every window a CNN sees, in training and in detection,
    is resampled this way (pyramid levels, cropped proposals, negatives): OpenCV's area
    resampling enlarges by repeating pixels (2x2 blocks at twice the size), so windows
    enlarged by it, but never the positives, would carry a blockiness a net can learn to
    reject and that no pyramid level shows."""
    height, width = image.shape[:2]
    grows = size[0] > width or size[1] > height
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR if grows else cv2.INTER_AREA)


def to_gray_uint8(image: np.ndarray) -> np.ndarray:
    """A 2-D/3-D uint8, uint16 or float image in memory to grayscale uint8.

    Floats must lie in [0, 1] (scikit-image's convention); a float image outside that range,
    such as one in 0-255, is a ``ValueError``, not an image clipped to white.
    """
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype.kind == "f":
        if image.size and not (np.isfinite(image).all() and image.min() >= 0.0
                               and image.max() <= 1.0):
            raise ValueError(f"a {image.dtype} image must hold values in [0, 1], not "
                             f"{float(np.nanmin(image)):g} to {float(np.nanmax(image)):g}")
        image = (image * 255.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {image.dtype}")
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        elif channels == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif channels == 1:
            image = image[:, :, 0]
        else:
            raise ValueError(f"unsupported channel count {channels}")
    return np.ascontiguousarray(image)


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an image atomically; the format follows the file suffix."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the image")
    with atomic_open(path, "wb") as handle:
        handle.write(encoded.tobytes())
