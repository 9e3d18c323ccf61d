"""Directories replaced so that a kill at any moment leaves a complete copy: checkpoints, exports, adapters.

A new version of ``final`` is written into a temporary sibling ``<name>.tmp-<pid>-<random>``
(:func:`staged_dir`), its files and folders fsynced; then the old ``final`` is renamed aside to
``<name>.old-<pid>``, the new one renamed into place, the parent fsynced, and only then the old one
removed (:func:`replace_dir`). A kill between the two renames leaves no ``final`` but a complete aside,
which :func:`recover_dir` moves back. An aside is renamed to a ``.tmp-`` name before it is deleted, so
an ``.old-`` directory is always complete; ``.tmp-`` leftovers of a killed write or delete are swept by
the next write of the same target. One writer per target is assumed.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (renames, new files) durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root``, then every directory, deepest first."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def _siblings(final: Path, kind: str) -> list[Path]:
    """``final``'s siblings named ``<name>.<kind>-*``."""
    if not final.parent.is_dir():
        return []
    prefix = f"{final.name}.{kind}-"
    return sorted(p for p in final.parent.iterdir() if p.name.startswith(prefix))


def _discard(path: Path, final: Path) -> None:
    """Remove ``path``, a copy of ``final``: an aside is first renamed to a ``.tmp-`` name, so a kill
    mid-delete leaves a leftover that is swept, never a partial directory under a trusted name."""
    if not path.name.startswith(f"{final.name}.tmp-"):
        trash = final.with_name(f"{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-del")
        os.replace(path, trash)
        path = trash
    shutil.rmtree(path, ignore_errors=True)


def sweep(final: Path) -> None:
    """Remove the ``<name>.tmp-*`` leftovers of killed writes or deletes of ``final``."""
    for stale in _siblings(final, "tmp"):
        if stale.is_dir():
            _discard(stale, final)
        else:
            stale.unlink(missing_ok=True)


def replace_dir(tmp: Path, final: Path) -> Path:
    """Put the fully written directory ``tmp`` in place of ``final`` (which may exist) durably: fsync
    ``tmp``, rename the old ``final`` aside, rename ``tmp`` to ``final``, fsync the parent, remove the
    old copy (and any aside a killed earlier replace left)."""
    fsync_tree(tmp)
    if final.exists():
        aside = final.with_name(f"{final.name}.old-{os.getpid()}")
        if aside.exists():
            _discard(aside, final)
        os.replace(final, aside)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    for old in _siblings(final, "old"):
        _discard(old, final)
    return final


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A fresh temporary sibling of ``final`` to write into, which replaces ``final``
    (:func:`replace_dir`) when the block ends normally and is removed when it raises. Leftovers of
    earlier killed writes of ``final`` are swept first."""
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep(final)
    tmp = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, final)


def recover_dir(final: Path, complete: Callable[[Path], bool]) -> bool:
    """Whether ``final`` exists, after moving the newest ``complete`` aside back into place when a kill
    between :func:`replace_dir`'s two renames left none (said on stderr)."""
    if final.exists():
        return True
    asides = [p for p in _siblings(final, "old") if p.is_dir() and complete(p)]
    if not asides:
        return False
    newest = max(asides, key=lambda p: p.stat().st_mtime)
    os.replace(newest, final)
    fsync_dir(final.parent)
    print(f"note: {final} was missing (a write was interrupted); recovered the previous copy from {newest.name}", file=sys.stderr)
    return True
