"""Resume state of a training run: a hidden file beside the output, keyed by the settings
and a digest of every input, so that a killed run continues only where nothing changed."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resume_key(settings: dict[str, Any], *inputs: str | Path) -> str:
    """The key a resume state must carry: the settings and the digests of ``inputs``."""
    return json.dumps({"settings": settings, "inputs": [file_digest(p) for p in inputs]},
                      sort_keys=True)


def resume_path(out_path: str | Path) -> Path:
    """Where training keeps its state between steps: a hidden file beside its output."""
    out_path = Path(out_path)
    return out_path.with_name(f".{out_path.name}.resume")


def load_resume_state(path: Path, key: str, read: Callable[[Path], dict[str, Any]]
                      ) -> dict[str, Any] | None:
    """The state ``read(path)`` gives when the file exists and carries ``key``, else None.

    ``read`` raises ``OSError``, ``ValueError``, ``KeyError`` or ``TypeError`` for a file it
    cannot use; that is logged and costs only a restart from the beginning.
    """
    if not path.exists():
        return None
    try:
        state = read(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        LOG.warning("%s: unreadable resume state (%s); training from the start", path, error)
        return None
    if state.get("key") != key:
        LOG.warning("%s: resume state is for other settings or inputs; training from the start",
                    path)
        return None
    return state
