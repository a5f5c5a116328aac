"""`dvc exp run --temp -n NAME ...` that runs its own experiment, whatever runs beside it.

DVC's temporary runs share one stash: each `dvc exp run --temp` pushes its experiment there,
then reproduces entries until the stash is empty, taking the first each time
(TempDirQueue.get in dvc/repo/experiments/queue/tempdir.py). Started together, two such
commands can both take one entry, or one can run the other's params under its own name and
environment: a search's trial would then report another trial's numbers. Here DVC's own
command runs (its -S parsing, messages and exit codes) with that one method replaced: it
takes the entry named NAME, once. The search's workers run their trials this way.

    python -m cnn_denoise.recipes.exprun exp run --temp -n NAME [-S key=value ...]
"""

import contextlib
import os
import signal
import sys
from pathlib import Path

from cnn_denoise.recipes import runcache

NOTE = "CNN_DENOISE_EXP_DIR_NOTE"  # a file to write the temporary copy's folder into (single.py)


def _name(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg in ("-n", "--name") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--name="):
            return arg.split("=", 1)[1]
    return None


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def unknown_set_key(argv: list[str]) -> str | None:
    """The first -S/--set-param of argv whose key params.yaml does not have, told with the closest
    key, before DVC writes it into params.yaml (its own advice is `+key`, which the schema then
    refuses in the first stage); None when all are keys, and for a params.yaml that is not this
    project's or other files' keys (-S file.yaml:key=...)."""
    from cnn_denoise.common import safeyaml
    from cnn_denoise.config import params

    items = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-S", "--set-param")]
    items += [a.split("=", 1)[1] for a in argv if a.startswith("--set-param=")]
    tree = None
    for item in items:
        where, colon, rest = item.partition(":")
        if colon and "=" not in where:  # file:key=value
            if where != "params.yaml":
                continue
            item = rest
        key = item.partition("=")[0]
        if tree is None:
            tree = safeyaml.read(Path("params.yaml")) if Path("params.yaml").is_file() else {}
        if not isinstance(tree, dict) or set(tree) != set(params.Params.model_fields):
            return None  # not this project's params.yaml: DVC alone knows its keys
        ok, close = params.closest_key(key, tree)
        if not ok:
            fix = f"did you mean {close}?" if close else "use params.yaml's dotted names"
            return f"-S {key}: not a key of params.yaml (nothing ran; params.yaml is as it was); {fix}"
    return None


def own_entry_only(name: str) -> None:
    """Make TempDirQueue.get take the stash entry named `name` (once), not the first one."""
    from dvc.repo.experiments.exceptions import ExpQueueEmptyError
    from dvc.repo.experiments.executor import local
    from dvc.repo.experiments.executor.local import TempDirExecutor
    from dvc.repo.experiments.queue.base import QueueEntry, QueueGetResult
    from dvc.repo.experiments.queue.tempdir import TempDirQueue

    taken = []

    def get(self) -> QueueGetResult:
        if taken:
            raise ExpQueueEmptyError(f"experiment {name} has run")
        mine = [(rev, entry) for rev, entry in self.stash.stash_revs.items() if entry.name == name]
        if not mine:
            raise ExpQueueEmptyError(f"no stashed experiment named {name}")
        stash_rev, entry = mine[0]
        taken.append(stash_rev)
        queued = QueueEntry(
            self.repo.root_dir,
            self.scm.root_dir,
            self.ref,
            stash_rev,
            entry.baseline_rev,
            entry.branch,
            entry.name,
            entry.head_rev,
        )
        # init_executor drops the entry by its own rev (under DVC's lock), so others' stay
        executor = self.init_executor(self.repo.experiments, queued, TempDirExecutor, wdir=self._standalone_tmp_dir)
        return QueueGetResult(queued, executor)

    TempDirQueue.get = get
    local.mkdtemp = _noted_mkdtemp


def _noted_mkdtemp(*args, **kwargs) -> str:
    """DVC's mkdtemp for the copy, its folder written to NOTE at once: single.py removes the copy
    if this process is stopped. DVC removes it on an Exception only, and Ctrl-C or `kill` while
    it fills the copy is none (a stopped recipe left an empty .dvc/tmp/exps/standalone/tmp*)."""
    import tempfile

    folder = tempfile.mkdtemp(*args, **kwargs)
    if note := os.environ.get(NOTE):
        with contextlib.suppress(OSError):
            Path(note).write_text(folder)
    return folder


def drop_copy(note: Path) -> None:
    """Remove the temporary copy whose folder `note` names, if DVC left it (an experiment killed
    before DVC could remove it). Only a folder DVC makes for a copy, .dvc/tmp/exps/**/tmp* of the
    project in the working folder, is ever removed: an empty or stray note removes nothing."""
    import shutil

    with contextlib.suppress(OSError):
        text = note.read_text().strip()
        copy = Path(text).resolve() if text else None
        exps = (Path.cwd() / ".dvc" / "tmp" / "exps").resolve()
        if copy and copy.is_relative_to(exps) and copy.name.startswith("tmp") and copy.is_dir():
            shutil.rmtree(copy, ignore_errors=True)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _name(argv)
    if argv[:2] != ["exp", "run"] or "--temp" not in argv or not name:
        print("error: give dvc's arguments for one named temporary run: exp run --temp -n NAME ...", file=sys.stderr)
        return 2
    if problem := unknown_set_key(argv):
        print(f"error: {problem}", file=sys.stderr)
        return 1
    own_entry_only(name)
    # `kill` (a search stopping its workers) as Ctrl-C: DVC then undoes what it did in the
    # workspace while stashing (HEAD detached, -S values written) and removes its copy
    signal.signal(signal.SIGTERM, _interrupt)
    runcache.install()  # as the .pth does, for an environment set up without it
    from dvc.cli import main as dvc

    return dvc(argv)


if __name__ == "__main__":
    sys.exit(main())
