"""Extended Yale B: a folder of face crops whose file names give the light direction
(azimuth and elevation, degrees), and the light's angle to the camera axis.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

from pipeline.data.formats import AnnotationError, image_files

LOG = logging.getLogger(__name__)


YALE_NAME = re.compile(r"yaleB(?P<subject>\d+)_P(?P<pose>\d+)A(?P<azimuth>[+-]\d+)"
                       r"E(?P<elevation>[+-]\d+)\.pgm$")


def read_yale_b(folder: str | Path) -> list[tuple[Path, dict[str, int]]]:
    """Extended Yale B crops with the light direction parsed from each file name.

    Returns (path, {subject, pose, azimuth, elevation}) in degrees; ``_Ambient`` images (no
    light direction) and non-image files are skipped and logged.
    """
    found, ambient = [], 0
    for path in image_files(folder):
        match = YALE_NAME.search(path.name)
        if match is None:
            ambient += 1
            continue
        found.append((path, {k: int(v) for k, v in match.groupdict().items()}))
    if ambient:
        LOG.info("%s: skipped %d images without a light direction (ambient)", folder, ambient)
    if not found:
        raise AnnotationError(f"{folder}: no Yale B images named yaleBNN_P00A+000E+00.pgm")
    return found


def light_angle(azimuth: float, elevation: float) -> float:
    """Angle in degrees between the light direction and the camera axis, rounded to 1e-6
    degrees: light at 20 degrees is 20.0, not 19.99999999999999, and falls in the bin that
    starts at 20."""
    a, e = math.radians(azimuth), math.radians(elevation)
    return round(math.degrees(math.acos(max(-1.0, min(1.0, math.cos(a) * math.cos(e))))), 6)
