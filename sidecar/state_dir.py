"""The sidecar's state directory: atomic file writes and the stable sidecar id.

Files here must survive a crash half way through a write, so every write goes to
`NAME.tmp`, is fsynced, then renamed over `NAME` (and the directory fsynced so the
rename itself is durable). Must not import gRPC or the wire types.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

SIDECAR_ID_FILE = "sidecar-id"
_SIDECAR_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_or_create_sidecar_id(state_dir: Path, new_id: Callable[[], str]) -> str:
    """The id this sidecar keeps across restarts, so the control plane knows it again."""
    path = state_dir / SIDECAR_ID_FILE
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if _SIDECAR_ID.match(existing):
        return existing
    sidecar_id = new_id()
    write_atomic(path, (sidecar_id + "\n").encode())
    return sidecar_id
