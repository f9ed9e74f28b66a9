"""Files that no reader ever sees half-written, and that a crash of the machine keeps.

A writer writes to a temporary name beside the file and renames it over the file: a
rename within one folder is atomic, so a reader sees the old file or the new one. The
new bytes are flushed to the disk (``fsync``) before the rename, and the folder's entry
after it, so a power cut or a kernel crash leaves the old file or the new one too, not
an empty file under the new name (ext4 and XFS may commit a rename before the data).
That is one ``fsync`` per file written and one per folder: cheap for the few files a job
writes. Scratch files that nobody reads after a crash pass ``durable=False``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
from pathlib import Path

# renameat2(2): swap two paths in one atomic step (Linux 3.15, glibc 2.28).
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


@contextlib.contextmanager
def atomic(path: str | os.PathLike, suffix: str = "", durable: bool = True):
    """Yield a temporary name beside ``path``; when the block ends it replaces ``path``.

    If the block raises, the temporary file is removed. The name starts with a dot and
    holds ``.tmp``, so readers of a results tree skip it and :func:`remove_partials`
    finds what a killed writer left behind. ``suffix`` is for writers that append
    their own (``np.savez`` adds ``.npz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    try:
        yield temporary
        if durable:
            _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike):
    """Yield a temporary folder beside ``path``; when the block ends it replaces ``path``.

    For a set of files that belong together (a report's figures): a reader sees the
    whole old set or the whole new one, never a mix. If the block raises, the temporary
    folder is removed and ``path`` is untouched. The swap is one atomic step where the
    kernel offers ``renameat2``; elsewhere two renames, between which ``path`` is briefly
    absent (the old folder under a ``.tmp`` name until it is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)  # a killed writer's, of the same pid
    temporary.mkdir()
    try:
        yield temporary
        for member in temporary.rglob("*"):
            _fsync(member)
        _fsync(temporary)
        _swap(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    shutil.rmtree(temporary, ignore_errors=True)  # the old folder, after the swap
    _fsync(path.parent)


def _swap(new: Path, path: Path) -> None:
    """Put ``new`` at ``path``; the old ``path``, if any, ends up at ``new``'s name."""
    if not path.exists():
        os.rename(new, path)
        return
    if _exchange(new, path):
        return
    old = path.with_name(f"{new.name}.old")
    os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)
        raise
    os.rename(old, new)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (``renameat2``); False where this system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    done = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # not on this system
        return False
    raise OSError(code, os.strerror(code), str(second))


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # no fsync on this kind
            raise
    finally:
        os.close(descriptor)


def remove_partials(path: str | os.PathLike) -> None:
    """Remove the temporary files (and folders) that killed writers of ``path`` left."""
    path = Path(path)
    for partial in path.parent.glob(f".{path.name}.tmp*"):
        if partial.is_dir() and not partial.is_symlink():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
