"""Write files whole or not at all: a temp file beside the target, then an atomic rename.

DVC and users take a file that exists for a finished output; a run that is killed
midway must leave the old file (or none), never a truncated one.
"""

import fcntl
import io
import json
import os
import shutil
import stat as statmod
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _mode(full: int) -> int:
    """`full` (0o666 for files, 0o777 for folders) less the umask: what open() and mkdir() give,
    where mkstemp and mkdtemp would give 0600 and 0700."""
    mask = os.umask(0)
    os.umask(mask)
    return full & ~mask


@contextmanager
def atomic_path(path, tag: str = ""):
    """Yield a temp path in the target's folder; rename it onto `path` only if the block succeeds.

    With a `tag`, the temp file is .<name>.<tag>-<random>.tmp and this process holds an flock on
    it until it is renamed or removed: a writer killed by SIGKILL cleans nothing up, and
    `clean_abandoned` then tells its file (unlocked) from one another writer is filling."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{tag + '-' if tag else ''}", suffix=".tmp", dir=path.parent)
    if tag:
        fcntl.flock(fd, fcntl.LOCK_EX)
    else:
        os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _mode(0o666))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if tag:
            os.close(fd)


def clean_abandoned(folder, tag: str, keep=frozenset()) -> list[Path]:
    """Remove the .<name>.<tag>-<random>.tmp files in `folder` that no process holds locked
    (atomic_path's, left by a writer that was killed), except files whose (st_dev, st_ino) is
    in `keep`; return what was removed. Files another live writer holds are left to it."""
    removed = []
    for stale in sorted(Path(folder).glob(f".*.{tag}-*.tmp")) if Path(folder).is_dir() else ():
        try:
            fd = os.open(stale, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # gone meanwhile, a link, or not ours to read
            continue
        try:
            st = os.fstat(fd)
            if not statmod.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in keep:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its writer is alive
                continue
            now = os.stat(stale, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):  # still the file we locked under that name
                os.unlink(stale)
                removed.append(stale)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    return removed


@contextmanager
def atomic_dir(path):
    """Yield a temp folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _mode(0o777))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def clean_stale(*outputs) -> None:
    """Remove what a killed run left beside these outputs (.<name>.<random>.tmp files or
    folders): a stage calls it before its work, so debris never outlives the next run."""
    for out in map(Path, outputs):
        for stale in out.parent.glob(f".{out.name}.*.tmp") if out.parent.is_dir() else ():
            shutil.rmtree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink(missing_ok=True)


def check_writable(*outputs) -> None:
    """Fail now, not after an hour of training, if an output cannot be written: its folder (or
    the nearest one that exists) must be a folder that takes a new file. Creates nothing."""
    import errno

    for out in map(Path, outputs):
        folder = out.absolute().parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file stands where a folder should be", str(folder))
        if folder == out.absolute().parent:
            fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=folder)  # raises if it cannot
            os.close(fd)
            os.unlink(probe)
        elif not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "no permission to create folders in it", str(folder))


def write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")  # NaN is no JSON


def save_torch(path, obj) -> None:
    """torch.save, atomically. Serialised in memory first: torch.save names the archive's
    records after the file, and the temp file's random name would make the bytes differ."""
    import torch  # here, not at the top: stages that write no tensors need no torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())
