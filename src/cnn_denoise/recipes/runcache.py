"""DVC's run cache, made to pass over entries other processes are still writing, in every DVC
process of this project's environment.

StageCache.save writes an entry as a temporary file (`.<token>.tmp`) beside the others, then
moves it into place (through `<entry>.<token>.tmp`). Meanwhile `_load`, in an experiment running
beside it, takes the newest file of that folder, which is this temporary one. Half written, it
reads as corrupt, and `_load_cache` deletes it, so the writer's move fails and its stage with it:
"failed to reproduce ... No such file ... .tmp" (seen in a two-at-a-time sweep, and with `dvc
queue start -j 4` when the experiments run the same stage at once). A temporary file can also be
moved away between DVC's listing and its look at the file's age, which fails the stage too. Here
`_load` takes the newest finished entry: temporary files, and files gone since the listing, are
passed over (a writer killed mid-write leaves its temporary file, which is passed over as well).

DVC's queue workers and `dvc exp exec-run` are DVC's own processes, where no code of ours runs;
so `make setup` writes a .pth file (`main()`) that makes every Python of the project's virtual
environment call `install()` at start. That puts the guard on StageCache when DVC imports it.
"""

import os
import sys
from importlib.machinery import PathFinder

MODULE = "dvc.stage.cache"
PTH = "cnn_denoise_runcache.pth"  # read by site at every start of the environment's Python
# the .pth's one line: quiet where this module is not there (an older checkout on PYTHONPATH, say)
PTH_LINE = (
    'import importlib.util as u; u.find_spec("cnn_denoise") and u.find_spec("cnn_denoise.recipes.runcache") '
    'and __import__("cnn_denoise.recipes.runcache").recipes.runcache.install()\n'
)


def newest_finished(folder: str) -> str | None:
    """The newest entry of a run-cache folder that no process is still writing, or None."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return None
    ages = []
    for name in names:
        if name.endswith(".tmp"):  # being written, or moved into place, by another process
            continue
        try:
            ages.append((os.path.getmtime(os.path.join(folder, name)), name))
        except FileNotFoundError:  # gone since the listing
            continue
    return max(ages)[1] if ages else None


# DVC's internals the guard relies on, with the parameters it calls them with
RELIED_ON = {"_load": ("self", "stage"), "_get_cache_dir": ("self", "key"), "_load_cache": ("self", "key", "value")}


def _check(stage_cache: type, get_stage_hash) -> None:
    """An AttributeError naming the first internal the guard relies on that DVC no longer has as
    the guard calls it: StageCache's three methods and the module's _get_stage_hash."""
    import inspect

    wanted = {**{f"StageCache.{k}": v for k, v in RELIED_ON.items()}, "_get_stage_hash": ("stage",)}
    for name, parameters in wanted.items():
        method = getattr(stage_cache, name.split(".")[1]) if "." in name else get_stage_hash
        method = getattr(method, "__wrapped__", method)
        try:
            found = tuple(inspect.signature(method).parameters)
        except (TypeError, ValueError):
            found = None
        if found != parameters:
            raise AttributeError(f"{name} takes {found}, the guard calls it with {parameters}")


def spare_half_written(stage_cache: type, get_stage_hash) -> None:
    """Make `stage_cache._load` load the newest finished entry (once; DVC's own stays as __wrapped__)."""
    _check(stage_cache, get_stage_hash)
    load = stage_cache._load
    if getattr(load, "__wrapped__", None):
        return

    def _load(self, stage):
        key = get_stage_hash(stage)
        if not key:
            return None
        newest = newest_finished(self._get_cache_dir(key))
        return self._load_cache(key, newest) if newest else None

    _load.__wrapped__ = load
    stage_cache._load = _load


def _guard(module) -> None:
    """Guard the StageCache of DVC's loaded MODULE; a DVC whose StageCache has changed stays
    unguarded, with one line saying so."""
    try:
        spare_half_written(module.StageCache, getattr(module, "_get_stage_hash", None))
    except AttributeError as e:
        print(
            f"warning: DVC's run cache left unguarded ({e}); see src/cnn_denoise/recipes/runcache.py", file=sys.stderr
        )


class _Guard:
    """A finder for MODULE alone: finds it as Python would, and guards its StageCache right after
    the module runs."""

    def find_spec(self, name, path=None, target=None):
        if name != MODULE:
            return None
        spec = PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _guard(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Guard StageCache now if DVC's module is loaded, else when it is imported."""
    module = sys.modules.get(MODULE)
    if module is not None:
        _guard(module)
    elif not any(isinstance(f, _Guard) for f in sys.meta_path):
        sys.meta_path.insert(0, _Guard())


def main(argv=None) -> int:
    """Write the .pth into this Python's site-packages (the project's virtual environment)."""
    import argparse
    import sysconfig
    from pathlib import Path

    from cnn_denoise.common.atomic import write_text

    argparse.ArgumentParser(description=main.__doc__).parse_args(argv)
    path = Path(sysconfig.get_path("purelib")) / PTH
    write_text(path, PTH_LINE)  # whole or not at all: site reads it at every start
    print(f"DVC's run cache guarded in this environment: {path}", file=sys.stderr)
    return 0
