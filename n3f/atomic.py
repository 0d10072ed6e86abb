"""Atomic outputs: a reader (or Snakemake) never sees half a file or half a folder.

Every stage writes through these helpers. A file goes to a hidden temporary
sibling, is flushed and fsynced, then renamed over the target; a folder (zarr
store, frame folder) is built as ``<name>.partial-<pid>`` and renamed into
place when complete. A Python exception removes the temporary; a SIGKILL
cannot, so :func:`atomic_dir` first removes partial folders that an earlier,
killed run of the same stage left beside its target (Snakemake's lock means
no other live job writes the same output).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


def _tmp_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _partial_dir(path: Path) -> Path:
    return path.with_name(f"{path.name}.partial-{os.getpid()}")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fh)`` on a temporary sibling of ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_file(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_move(src: str | Path, dst: str | Path) -> Path:
    """Rename the finished file ``src`` over ``dst`` (same file system): a reader sees the old file or the new one."""
    os.replace(src, dst)
    return Path(dst)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))


def partial_dirs(path: str | Path) -> list[Path]:
    """Temporary folders of ``path`` left by earlier runs (``<name>.partial-<pid>``)."""
    path = Path(path)
    if not path.parent.exists():
        return []
    return sorted(p for p in path.parent.glob(f"{path.name}.partial-*") if p.is_dir())


def remove_stale_partials(path: str | Path, keep: Path | None = None) -> list[Path]:
    """Remove the partial folders an interrupted run of this stage left beside ``path``."""
    removed = []
    for stale in partial_dirs(path):
        if keep is not None and stale == keep:
            continue
        shutil.rmtree(stale, ignore_errors=True)
        log.warning("removed %s, left by an interrupted earlier run", stale)
        removed.append(stale)
    return removed


def _fresh_partial(path: Path) -> Path:
    """This process's partial folder beside ``path``, after clearing what killed runs left there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial_dir(path)
    remove_stale_partials(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    return tmp


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """``with atomic_dir(out) as tmp: <write everything under tmp>``; ``out`` appears only when done.

    An existing ``out`` is replaced. On an exception the partial folder is removed
    and ``out`` is left as it was.
    """
    path = Path(path)
    tmp = _fresh_partial(path)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


@contextmanager
def scratch_dir(path: str | Path) -> Iterator[Path]:
    """``with scratch_dir(work) as tmp:`` a working folder beside ``work``, removed when the block ends.

    For what a stage needs while it runs but does not keep (SfM's database and
    sub-models before the chosen ones are moved out). It is named like
    :func:`atomic_dir`'s partial folders, so one that a killed run left is
    removed by the next.
    """
    tmp = _fresh_partial(Path(path))
    tmp.mkdir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
