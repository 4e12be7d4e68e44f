"""Atomic file writes: a record is either the old one or the new one, never torn, never a stray temp file.

Write to a temporary file beside the target, flush it to disk, then rename over the target (atomic on
POSIX). On any failure the temporary file is removed and the target is left as it was. A full disk or
an unwritable directory surfaces as the `OSError` that caused it, also when `torch.save` wraps it in a
RuntimeError ("unexpected pos"), so callers can say what happened in one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(handle)` on a temporary file and rename it to `path` once it is complete on disk."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        cause = exc.__context__ or exc.__cause__
        if isinstance(exc, RuntimeError) and isinstance(cause, OSError):
            raise cause from None  # torch.save's "unexpected pos" hides the disk's own error
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
