"""Recipes: named params overrides kept as data in recipes/<name>.yaml, run as DVC experiments.

A recipe file holds a `description` and either `params` (one experiment, named after the
file) or `variants` (a sweep: a list of {name, params}, queued and run in parallel), and may
`extend` another recipe, whose params it starts from. Keys are params.yaml's dotted names,
values what params.yaml would hold (e.g. `train.batch_size: full`). Every variant is
checked against the params schema before anything runs.

    python -m cnn_denoise.recipes list
    python -m cnn_denoise.recipes run linear-gate [-S key=value ...] [--jobs 2] [--dry-run]
"""

import argparse
import copy
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import yaml
from pydantic import ValidationError

from . import params
from .errors import PipelineError, run_stage

FOLDER = "recipes"


class Variant(NamedTuple):
    name: str
    overrides: dict  # {"model.taps": [79, 1], ...}


def folder(root=None) -> Path:
    return Path(root or Path.cwd()) / FOLDER


def names(root=None) -> list[str]:
    return sorted(p.stem for p in folder(root).glob("*.yaml"))


def _read(name: str, root, seen=()) -> dict:
    path = folder(root) / f"{name}.yaml"
    if name in seen:
        raise PipelineError(
            f"recipe {name}: `extend` goes round in a circle ({' -> '.join((*seen, name))}); fix {path}"
        )
    if not path.is_file():
        raise PipelineError(f"no recipe {name!r} in {folder(root)}; choose one of {', '.join(names(root)) or 'none'}")
    raw = yaml.safe_load(path.read_text()) or {}
    if (
        not isinstance(raw, dict)
        or not ({"params", "variants"} & set(raw))
        or set(raw) - {"description", "extend", "params", "variants", "search"}  # search: cnn_denoise.tune
    ):
        raise PipelineError(
            f"{path}: a recipe is a mapping with description, optional extend, and params or variants; fix the file"
        )
    if raw.get("extend"):
        base = _read(raw["extend"], root, (*seen, name))
        raw = {**raw, "params": {**base.get("params", {}), **(raw.get("params") or {})}}
    return raw


def set_dotted(tree: dict, overrides: dict) -> dict:
    """A copy of the nested `tree` with dotted keys replaced: {"a.b": 1} sets tree["a"]["b"]."""
    out = copy.deepcopy(tree)
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = out
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise PipelineError(
                    f"recipe key {dotted!r}: params.yaml has no section {part!r}; use params.yaml's dotted names"
                )
            node = node[part]
        if key not in node:
            raise PipelineError(f"recipe key {dotted!r} is not in params.yaml; use params.yaml's dotted names")
        node[key] = value
    return out


def load(name: str, root=None, extra: dict | None = None) -> list[Variant]:
    """The recipe's experiments, each checked against params.yaml's schema."""
    raw = _read(name, root)
    if "variants" in raw:
        variants = [
            Variant(v.get("name") or f"{name}-{i + 1}", {**(raw.get("params") or {}), **v.get("params", {})})
            for i, v in enumerate(raw["variants"])
        ]
    else:
        variants = [Variant(name, raw["params"])]
    base = yaml.safe_load((Path(root or Path.cwd()) / "params.yaml").read_text())
    out = []
    for v in variants:
        overrides = {**v.overrides, **(extra or {})}
        try:
            params.Params.model_validate(set_dotted(base, overrides))
        except ValidationError as exc:
            raise PipelineError(
                f"recipe {name}, experiment {v.name}: {params.one_line(exc)}; fix {folder(root) / name}.yaml"
            ) from None
        out.append(Variant(v.name, overrides))
    return out


def set_args(overrides: dict) -> list[str]:
    """`-S key=value` arguments for `dvc exp run`; DVC reads each value back as YAML."""
    args = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]
    return args


def commands(variants: list[Variant], jobs: int = 2, temp: bool = False) -> list[list[str]]:
    """One `dvc exp run` for a single experiment (in the workspace, or with `temp` in a copy
    that leaves the workspace as it is); a sweep is queued and run `jobs` at a time. Queued
    and temp runs see only the files git tracks."""
    if len(variants) == 1:
        return [
            [
                "dvc",
                "exp",
                "run",
                *(["--temp"] if temp else []),
                "-n",
                variants[0].name,
                *set_args(variants[0].overrides),
            ]
        ]
    queued = [["dvc", "exp", "run", "--queue", "-n", v.name, *set_args(v.overrides)] for v in variants]
    return [*queued, ["dvc", "queue", "start", "-j", str(jobs)]]


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise PipelineError(f"-S {item!r}: expected key=value, e.g. -S train.epochs=2")
        out[key] = yaml.safe_load(value)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnn_denoise.recipes", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the recipes in recipes/ with their descriptions")
    run = sub.add_parser("run", help="run a recipe as DVC experiments")
    run.add_argument("name")
    run.add_argument(
        "-S", "--set", action="append", default=[], metavar="KEY=VALUE", help="an extra override, after the recipe's"
    )
    run.add_argument("-j", "--jobs", type=int, default=2, help="experiments of a sweep run at once (default 2)")
    run.add_argument(
        "--temp", action="store_true", help="run a single experiment in a copy, leaving the workspace as it is"
    )
    run.add_argument("--dry-run", action="store_true", help="print the dvc commands, run nothing")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in names():
            print(f"{name:16} {_read(name, None).get('description', '')}")
        return 0
    for cmd in commands(load(args.name, extra=_parse_set(args.set)), args.jobs, args.temp):
        print("+ " + shlex.join(cmd), file=sys.stderr)
        if not args.dry_run and subprocess.run(cmd).returncode != 0:
            return 1
    if not args.dry_run and cmd[:3] == ["dvc", "queue", "start"]:
        return _wait_for_queue()
    return 0


def _queue_statuses() -> list[str]:
    """Each queued task's status, read in this process: a `dvc queue status` process costs ~0.6 s
    of CPU (and a second waiting on the workers) each poll, a tenth of a core the experiments want."""
    from dvc.repo import Repo

    with Repo() as repo:
        return [task["status"] for task in repo.experiments.celery_queue.status()]


def _wait_for_queue() -> int:
    """Block until the queue is empty; say how it went."""
    import time

    while any(s in ("Running", "Queued") for s in _queue_statuses()):
        time.sleep(2)
    status = subprocess.run(["dvc", "queue", "status"], capture_output=True, text=True).stdout
    print(status, file=sys.stderr)
    return 1 if "Failed" in status else 0


if __name__ == "__main__":
    run_stage(main)
