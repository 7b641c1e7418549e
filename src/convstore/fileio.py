"""Durable file writes shared by the files backend, archives and backups."""

from __future__ import annotations

import os
from pathlib import Path

from convstore.errors import DataIntegrityError


def write_atomic(path: Path, data: bytes, temp_dir: Path) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, whole,
    even across a crash: temp file, fsync, rename, fsync of the directory."""
    temp = temp_dir / f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make renames and deletions in ``directory`` durable (a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (os.write may write fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def no_links(path: Path, root: Path) -> Path:
    """``path`` if neither it nor a directory between it and ``root`` is a symbolic
    link; convstore never follows a link out of its own directory."""
    current = path
    while current not in (root, current.parent):
        if current.is_symlink():
            raise DataIntegrityError(
                f"{current} is a symbolic link; convstore does not follow links in {root}"
            )
        current = current.parent
    return path
