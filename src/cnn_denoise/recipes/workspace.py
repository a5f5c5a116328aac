"""The workspace as a long command found it, put back when the command stops short.

An experiment of a recipe, a sweep or a search runs in a copy (`dvc exp run --temp`), yet DVC
still touches the workspace around it: while it stashes the experiment it detaches HEAD and
writes the -S values into params.yaml, and `dvc exp apply` rewrites params.yaml, dvc.lock,
models/ and metrics/. DVC undoes the first on Ctrl-C, but a `kill -9` (or a SIGTERM to DVC
itself, which Python does not turn into an exception) stops it in the middle. So each command
takes a Snapshot before it starts DVC and, if it ends any other way than finished, compares
the workspace with it and puts back what differs: HEAD on its branch, and params.yaml,
dvc.lock, models/, metrics/ and every tracked file with uncommitted changes, byte for byte, and
removes the git lock files (.git/index.lock, a ref's .lock) that were not there when it started:
a DVC killed while it stashed leaves them, and the next command would find "the index is locked".
(It runs when the command's own DVC processes have ended; a git command of yours that started
meanwhile in the same repository and still runs would lose its lock too.)
"""

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cnn_denoise.common.atomic import write_bytes
from cnn_denoise.common.errors import PipelineError

FILES = ("params.yaml", "dvc.lock")
FOLDERS = ("models", "metrics")  # DVC outputs a person looks at: kept whole, as they were
LIMIT = 256 << 20  # bytes held in memory; a workspace with more is only compared, never rewritten


def _git(root: Path, *args: str) -> str | None:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def _watched(root: Path) -> list[str]:
    """The files a snapshot keeps: FILES, what lies in FOLDERS, tracked files with changes."""
    names = {f for f in FILES if (root / f).is_file()}
    for top in FOLDERS:
        names |= {str(p.relative_to(root)) for p in (root / top).rglob("*") if p.is_file() or p.is_symlink()}
    changed = _git(root, "diff", "--name-only", "HEAD") or ""
    names |= {n for n in changed.splitlines() if n and (root / n).is_file()}
    return sorted(names)


def _git_locks(root: Path) -> dict[str, tuple[int, int]]:
    """Git's lock files in root/.git (at its top, under refs/ and logs/): path -> (inode, mtime in
    ns), which tells a lock made later from one that was there. A worktree's `.git` file: none."""
    git = root / ".git"
    if not git.is_dir():
        return {}
    found = {}
    for lock in [*git.glob("*.lock"), *(git / "refs").rglob("*.lock"), *(git / "logs").rglob("*.lock")]:
        try:
            st = lock.stat()
        except OSError:  # removed meanwhile
            continue
        if lock.is_file():
            found[str(lock.relative_to(root))] = (st.st_ino, st.st_mtime_ns)
    return found


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None


@dataclass
class Snapshot:
    root: Path
    branch: str | None  # refs/heads/NAME, or None for a detached HEAD
    head: str | None  # the commit; None in a repository without one
    files: dict[str, bytes | None] = field(default_factory=dict)  # None: the file was not there
    locks: dict[str, tuple[int, int]] = field(default_factory=dict)  # git's lock files then (_git_locks)

    @classmethod
    def take(cls, root=None) -> "Snapshot":
        root = Path(root or Path.cwd()).resolve()
        locks = _git_locks(root)
        files, size = {}, 0
        for name in _watched(root):
            data = _read(root / name)
            size += len(data or b"")
            if size > LIMIT:
                raise PipelineError(
                    f"{name}: the workspace's params, models and changed files pass {LIMIT >> 20} MiB, more than "
                    "this command keeps to put them back; commit them or move large files out of models/"
                )
            files[name] = data
        return cls(
            root,
            _git(root, "symbolic-ref", "-q", "HEAD"),
            _git(root, "rev-parse", "-q", "--verify", "HEAD"),
            files,
            locks,
        )

    def where(self) -> str:
        """`branch main at 1a2b3c4` (or `a detached HEAD at ...`)."""
        at = f" at {self.head[:7]}" if self.head else ""
        return f"branch {self.branch.removeprefix('refs/heads/')}{at}" if self.branch else f"a detached HEAD{at}"

    def new_locks(self) -> list[str]:
        """Git's lock files that were not there at the snapshot (or were, and were made again)."""
        return sorted(n for n, key in _git_locks(self.root).items() if self.locks.get(n) != key)

    def changes(self) -> list[str]:
        """What differs from the snapshot: 'HEAD', the paths in order, then new git lock files."""
        out = []
        if (_git(self.root, "symbolic-ref", "-q", "HEAD"), _git(self.root, "rev-parse", "-q", "--verify", "HEAD")) != (
            self.branch,
            self.head,
        ):
            out.append("HEAD")
        now = set(_watched(self.root)) | set(self.files)
        return out + [n for n in sorted(now) if _read(self.root / n) != self.files.get(n)] + self.new_locks()

    def restore(self) -> tuple[list[str], list[str]]:
        """Put back what changed and remove new git locks; return (what was put back, the locks
        removed). HEAD goes back to its branch only if the branch still points where it did
        (else PipelineError: a person decides)."""
        locks = self.new_locks()
        for name in locks:  # first: a stale HEAD.lock stops git below
            (self.root / name).unlink(missing_ok=True)
        changed = self.changes()
        if "HEAD" in changed:
            if self.branch:
                if _git(self.root, "rev-parse", "-q", "--verify", self.branch) != self.head:
                    raise PipelineError(
                        f"{self.branch} moved while the command ran; the workspace is on "
                        f"{_git(self.root, 'rev-parse', '--short', 'HEAD')}: git checkout "
                        f"{self.branch.removeprefix('refs/heads/')} goes back"
                    )
                _git(self.root, "symbolic-ref", "HEAD", self.branch)
            elif self.head:
                _git(self.root, "update-ref", "--no-deref", "HEAD", self.head)
        for name in (n for n in changed if n != "HEAD"):
            path, data = self.root / name, self.files.get(name)
            if data is None:
                path.unlink(missing_ok=True)
            else:
                if path.is_symlink():  # DVC links outputs from its cache with some cache types
                    path.unlink()
                write_bytes(path, data)
        return changed, locks


def put_back(snap: Snapshot) -> str:
    """Restore the snapshot (Ctrl-C and `kill` held off meanwhile: this process is ending) and
    say in words what state the workspace is in."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    try:
        back, locks = snap.restore()
    except PipelineError as exc:
        return f"the workspace is NOT as it was: {exc}"
    except OSError as exc:
        return f"the workspace is NOT as it was: {exc.filename or ''} could not be written back ({exc.strerror})"
    removed = f"; removed the git locks its DVC left: {', '.join(locks)}" if locks else ""
    if not back:
        return (
            f"the workspace is as it was ({snap.where()}; params.yaml, dvc.lock, models/, metrics/ untouched{removed})"
        )
    shown = ", ".join(back[:4]) + (f" and {len(back) - 4} more" if len(back) > 4 else "")
    return f"the workspace is as it was ({snap.where()}; put back: {shown}{removed})"
