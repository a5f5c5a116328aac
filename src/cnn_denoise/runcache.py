"""DVC's run cache, made to pass over an entry another process is still writing, in every DVC
process of this project's environment.

StageCache.save writes an entry as a temporary file (`.<token>.tmp`) beside the others, then
moves it into place. Meanwhile `_load`, in an experiment running beside it, takes the newest
file of that folder, which is this temporary one. Half written, it reads as corrupt, and
`_load_cache` deletes it, so the writer's move fails and its stage with it: "failed to reproduce
... No such file ... .tmp" (seen in a two-at-a-time sweep, and with `dvc queue start -j 4` when
the experiments run the same stage at once). Here such a file reads as no entry, which is a
run-cache miss: the stage runs, and the writer's file is left alone.

DVC's queue workers and `dvc exp exec-run` are DVC's own processes, where no code of ours runs;
so `make setup` writes a .pth file (`python -m cnn_denoise.runcache`) that makes every Python of
the project's virtual environment call `install()` at start. That puts the guard on StageCache
when DVC imports it, and costs any other process one look at a module name.
"""

import functools
import sys
import sysconfig
from importlib.abc import MetaPathFinder
from importlib.machinery import PathFinder
from pathlib import Path

MODULE = "dvc.stage.cache"
PTH = "cnn_denoise_runcache.pth"  # read by site at every start of the environment's Python


def spare_half_written(stage_cache: type) -> None:
    """Make `stage_cache._load_cache` read another process's temporary entry as no entry, and
    `_load` look again when a file it listed is moved away before it could see its age (once)."""
    load_cache, load = stage_cache._load_cache, stage_cache._load
    if getattr(load_cache, "spares_tmp", False):
        return

    @functools.wraps(load_cache)  # DVC's own method stays as __wrapped__
    def _load_cache(self, key, value):
        if value.startswith(".") and value.endswith(".tmp"):
            return None
        return load_cache(self, key, value)

    @functools.wraps(load)
    def _load(self, stage):
        try:
            return load(self, stage)
        except FileNotFoundError:  # the writer's move came between DVC's listdir and getmtime
            return load(self, stage)

    _load_cache.spares_tmp = True
    stage_cache._load_cache, stage_cache._load = _load_cache, _load


class _Guard(MetaPathFinder):
    """Finds MODULE as Python would, and guards its StageCache right after the module runs."""

    def find_spec(self, name, path=None, target=None):
        if name != MODULE:
            return None
        spec = PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            spare_half_written(module.StageCache)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Guard StageCache now if DVC's module is loaded, else when it is imported."""
    if MODULE in sys.modules:
        spare_half_written(sys.modules[MODULE].StageCache)
    elif not any(isinstance(f, _Guard) for f in sys.meta_path):
        sys.meta_path.insert(0, _Guard())


def main() -> int:
    """Write the .pth into this Python's site-packages (the project's virtual environment)."""
    path = Path(sysconfig.get_path("purelib")) / PTH
    path.write_text("import cnn_denoise.runcache; cnn_denoise.runcache.install()\n")
    print(f"DVC's run cache guarded in this environment: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
