"""Atomic output files: written beside their destination, then moved into place in one step."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces ``path`` when the block succeeds.

    Readers never see a half-written file; on error the temporary file is removed. ``suffix``
    keeps the extension for writers that infer the format from it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)   # an ordinary new file, not mkstemp's owner-only mode
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
