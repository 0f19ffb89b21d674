"""Output files: checked writable before any work, written beside their destination, then moved into
place in one step."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cartsim.errors import CartsimInputError


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


def _probe_writable(folder: Path, field: str, shown: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise CartsimInputError(field, f"cannot write to {str(shown)!r} ({err.strerror})") from None


def check_output_dir(path: Path, field: str = "--output") -> None:
    """``path`` must be a directory or creatable as one, somewhere writable (checked by writing a probe)."""
    if path.exists() and not path.is_dir():
        raise CartsimInputError(field, f"{str(path)!r} exists and is not a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise CartsimInputError(field, f"{str(probe)!r} is not a directory")
    _probe_writable(probe, field, path)


def check_output_file(path: Path, field: str = "--output") -> None:
    """``path`` must name a file (not a folder) in an existing, writable folder."""
    if path.is_dir():
        raise CartsimInputError(field, f"{str(path)!r} is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise CartsimInputError(field, f"folder {str(folder)!r} does not exist")
    _probe_writable(folder, field, folder)
