"""Atomic file output: write to a temporary sibling, then rename, so a failure leaves nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from toolchain.errors import StqError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def readable(path: Path, directory: bool = False) -> None:
    """Give a temporary file (0600 from mkstemp) or folder (0700) the usual mode: 0644 / 0755
    under the common umask 022, as ``open`` and ``mkdir`` would have."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def ensure_writable_dir(path: Path) -> None:
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise StqError(f"cannot create output directory {path}: {parent} is a file, not a "
                           "directory")
        if parent.exists():
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StqError(f"cannot create output directory {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise StqError(f"output directory {path} is not writable")


@contextmanager
def output_dir(path: Path) -> Iterator[Path]:
    """Create ``path`` (and missing parents) for a command's output; if the command fails,
    remove the folders it created that are still empty, so a failure leaves nothing behind."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    ensure_writable_dir(path)
    try:
        yield path
    except BaseException:
        for p in missing:  # deepest first
            try:
                p.rmdir()
            except OSError:
                break
        raise


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success."""
    target = Path(target)
    ensure_writable_dir(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise StqError(f"cannot write {target}: {exc.strerror}") from None
    os.close(fd)
    readable(Path(tmp))
    try:
        yield Path(tmp)
        if target.is_dir():
            raise StqError(f"cannot write {target}: it is a directory")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; it replaces ``target`` on success."""
    target = Path(target)
    ensure_writable_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    readable(tmp, directory=True)
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
