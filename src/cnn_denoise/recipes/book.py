"""Recipes: named params overrides kept as data in recipes/<name>.yaml, run as DVC experiments.

A recipe file holds a `description` and either `params` (one experiment, named after the
file) or `variants` (a sweep: a list of {name, params}, run in parallel from one warm process: warm.py), and may
`extend` another recipe, whose params it starts from. Keys are params.yaml's dotted names,
values what params.yaml would hold (e.g. `train.batch_size: full`). Every variant, and every
-S key (named with the closest one when params.yaml lacks it), is checked against the params
schema before anything runs. Each experiment runs in a copy of the workspace (single.py,
sweep.py), so stopping one leaves the workspace as it was.

    python -m cnn_denoise.recipes list
    python -m cnn_denoise.recipes run linear-gate [-S key=value ...] [--jobs 2] [--temp] [--dry-run]
"""

import argparse
import copy
import math
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from pydantic import ValidationError

from cnn_denoise.common import safeyaml
from cnn_denoise.common.errors import PipelineError, first_line, run_stage
from cnn_denoise.config import params
from cnn_denoise.recipes import single, sweep, workspace

FOLDER = "recipes"


class Variant(NamedTuple):
    name: str
    overrides: dict  # {"model.taps": [79, 1], ...}


def folder(root=None) -> Path:
    return Path(root or Path.cwd()) / FOLDER


def names(root=None) -> list[str]:
    return sorted(p.stem for p in folder(root).glob("*.yaml"))


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # an experiment's name, as DVC and git refs take it


def _shape_problem(raw) -> str | None:
    """Why a recipe file's contents are not a recipe, or None."""
    if not isinstance(raw, dict) or not ({"params", "variants"} & set(raw)):
        return "a recipe is a mapping with description, optional extend, and params or variants"
    if unknown := set(raw) - {"description", "extend", "params", "variants", "search"}:  # search: tune.py
        key = sorted(map(str, unknown))[0]
        return f"unknown key {key!r}; a recipe has description, extend, params, variants or search"
    if not isinstance(raw.get("description", ""), str):
        return "description must be a line of text"
    if "extend" in raw and not (isinstance(raw["extend"], str) and NAME.fullmatch(raw["extend"])):
        return f"extend must name another recipe, got {raw['extend']!r}"
    blocks = [("params", raw["params"])] if "params" in raw else []
    if "variants" in raw:
        if not isinstance(raw["variants"], list) or not raw["variants"]:
            return "variants must be a list of {name, params}"
        for i, v in enumerate(raw["variants"]):
            if not isinstance(v, dict) or set(v) - {"name", "params"}:
                return f"variant {i + 1} must be a mapping with name and params"
            if "name" in v and not (isinstance(v["name"], str) and NAME.fullmatch(v["name"])):
                return f"variant {i + 1}: name {v['name']!r} is not an experiment name (letters, digits, . _ -)"
            blocks.append((f"variant {i + 1} params", v.get("params", {})))
    for what, block in blocks:
        if not isinstance(block, dict) or not all(isinstance(k, str) for k in block):
            return f"{what} must map params.yaml's dotted names to values"
    return None


def _read(name: str, root, seen=()) -> dict:
    path = folder(root) / f"{name}.yaml"
    if name in seen:
        raise PipelineError(
            f"recipe {name}: `extend` goes round in a circle ({' -> '.join((*seen, name))}); fix {path}"
        )
    if not path.is_file():
        raise PipelineError(f"no recipe {name!r} in {folder(root)}; choose one of {', '.join(names(root)) or 'none'}")
    raw = safeyaml.read(path)
    if why := _shape_problem(raw):
        raise PipelineError(f"{path}: {why}; fix the file")
    if raw.get("extend"):
        base = _read(raw["extend"], root, (*seen, name))
        raw = {**raw, "params": {**base.get("params", {}), **(raw.get("params") or {})}}
    return raw


def set_dotted(tree: dict, overrides: dict) -> dict:
    """A copy of the nested `tree` with dotted keys replaced: {"a.b": 1} sets tree["a"]["b"]. A key
    params.yaml does not have is refused, naming the closest one it has."""
    out = copy.deepcopy(tree)
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or key not in node:
            close = params.closest_key(dotted, tree)[1]
            fix = f"did you mean {close}?" if close else "use params.yaml's dotted names"
            raise PipelineError(f"recipe key {dotted!r} is not in params.yaml; {fix}")
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
    base = safeyaml.read(Path(root or Path.cwd()) / "params.yaml")
    if not isinstance(base, dict):
        raise PipelineError("params.yaml is not a mapping of sections; fix it")
    for key, value in params.flatten(base).items():
        if isinstance(value, str) and "${" in value:
            raise PipelineError(
                f"params.yaml: {key} writes ${{...}}, which dvc exp run -S (every recipe) reads as an interpolation "
                "and fails on; write a variable as $NAME, not ${NAME}"
            )
    for key in extra or {}:  # before DVC, which would write it into params.yaml
        ok, close = params.closest_key(key, base)
        if not ok:
            fix = f"did you mean {close}?" if close else "use params.yaml's dotted names"
            raise PipelineError(f"-S {key}: not a key of params.yaml (nothing ran; params.yaml is as it was); {fix}")
    out = []
    for v in variants:
        overrides = {**v.overrides, **(extra or {})}
        try:
            params.Params.model_validate(set_dotted(base, overrides))
        except ValidationError as exc:
            where = f"{folder(root) / name}.yaml" + (" or the -S values" if extra else "")
            raise PipelineError(f"recipe {name}, experiment {v.name}: {params.one_line(exc)}; fix {where}") from None
        out.append(Variant(v.name, overrides))
    return out


def hydra_value(value, key: str) -> str:
    """`value` as Hydra's override grammar reads it (DVC parses each -S value with Hydra, not
    YAML): strings single-quoted (plain words left bare), so a comma is no sweep and (, #, = or a
    quote no syntax error; lists and mappings in Hydra's brackets; numbers, booleans and null as
    themselves."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PipelineError(f"{key}: {value} is not a finite number, which no param takes; give a number")
        return repr(value)
    if isinstance(value, str):
        if "${" in value:
            raise PipelineError(
                f"{key}: a value holding ${{...}} is an interpolation to DVC's -S (OmegaConf), not text; "
                "write a variable as $NAME"
            )
        if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value):
            raise PipelineError(f"{key}: the value holds a control character, which -S cannot carry; remove it")
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", value) and value.lower() not in (
            "null",
            "true",
            "false",
            "nan",
            "inf",
        ):
            return value  # a plain word (linear, full, adam) reads as itself: the command stays readable
        # Hydra's quoted strings: a quote and the backslashes right before it, or before the
        # closing quote, are escaped with backslashes; any other backslash is itself.
        body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
        body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)
        return f"'{body}'"
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v, key) for v in value) + "]"
    if isinstance(value, dict) and all(isinstance(k, str) and re.fullmatch(r"[A-Za-z_][\w-]*", k) for k in value):
        return "{" + ",".join(f"{k}:{hydra_value(v, key)}" for k, v in value.items()) + "}"
    raise PipelineError(
        f"{key}: a {type(value).__name__} value ({value!r:.60}) has no form in DVC's -S; write it as text, "
        "a number, a list or a mapping with plain keys"
    )


def set_args(overrides: dict) -> list[str]:
    """`-S key=value` arguments for `dvc exp run`, each read back with Hydra's own parser (what
    DVC runs on them) and refused unless it gives the value that was validated, as one value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, args = OverridesParser.create(), []
    for key, value in overrides.items():
        arg = f"{key}={hydra_value(value, key)}"
        try:
            [parsed] = parser.parse_overrides([arg])
            back = None if parsed.is_sweep_override() else parsed.value()
        except Exception as exc:  # Hydra's OverrideParseException and whatever its grammar raises
            raise PipelineError(f"-S {arg}: DVC could not parse it ({first_line(exc)}); report it") from None
        if back != value or type(back) is not type(value) and not isinstance(value, list | dict):
            raise PipelineError(f"-S {arg}: DVC would read {back!r}, not {value!r}; report it")
        args += ["-S", arg]
    return args


def commands(variants: list[Variant], force: bool = False) -> list[list[str]]:
    """One `dvc exp run --temp` per variant (`force` replaces an experiment of the same name), each
    in a copy that leaves the workspace as it is while it runs: a single experiment is brought in
    once it has finished (single.py), a sweep's run from one warm process (sweep.py). Copies see
    only the files git tracks, with the workspace's uncommitted changes to them."""
    return [
        ["dvc", "exp", "run", "--temp", *(["-f"] if force else []), "-n", v.name] + set_args(v.overrides)
        for v in variants
    ]


def _parse_set(items: list[str]) -> dict:
    """-S key=value items read as `dvc exp run -S` reads them (Hydra's grammar, not YAML: `{a:2}`
    is a mapping), so one value means the same to both commands; a sweep (a,b) is refused."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, out = OverridesParser.create(), {}
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise PipelineError(f"-S {item!r}: expected key=value, e.g. -S train.epochs=2")
        try:
            [parsed] = parser.parse_overrides([item])
        except Exception as exc:  # Hydra's OverrideParseException and whatever its grammar raises
            raise PipelineError(
                f"-S {item}: not a value dvc exp run -S reads ({first_line(exc)}); quote text"
            ) from None
        if parsed.is_sweep_override():
            raise PipelineError(f"-S {item}: a comma makes a sweep of several experiments; quote it: {key}='...'")
        out[key] = parsed.value()
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
        "-S",
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra override, after the recipe's, read as dvc exp run -S reads it",
    )
    run.add_argument("-j", "--jobs", type=int, default=2, help="experiments of a sweep run at once (default 2)")
    run.add_argument(
        "--temp",
        action="store_true",
        help="leave a single experiment out of the workspace once it has finished (dvc exp apply NAME brings it in)",
    )
    run.add_argument("--dry-run", action="store_true", help="print the dvc commands, run nothing")
    run.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="replace an experiment of the same name (else: a new name, NAME-2...)",
    )
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in names():
            print(f"{name:16} {_read(name, None).get('description', '')}")
        return 0
    variants = load(args.name, extra=_parse_set(args.set))
    if not args.force:  # a dry run shows the name a run would take
        taken = existing_experiments()
        variants = [v._replace(name=fresh_name(v.name, taken)) for v in variants]
    cmds = commands(variants, args.force)
    for cmd in cmds:
        print("+ " + shlex.join(cmd), file=sys.stderr)
    if args.dry_run:
        return 0
    again = command_again(sys.argv[1:] if argv is None else argv)
    if len(cmds) > 1:
        share_cores(args.jobs)
        snap = workspace.Snapshot.take()
        try:
            code = sweep.sweep([(v.name, cmd[4:]) for v, cmd in zip(variants, cmds, strict=True)], args.jobs)
        except KeyboardInterrupt:
            state = workspace.put_back(snap)
            print(
                f"error: interrupted; experiments that finished are kept (make exps); {state}; "
                f"to run the others: {again}",
                file=sys.stderr,
            )
            return 130
        if code and snap.changes():  # an experiment killed while DVC was stashing it in the workspace
            print(f"sweep: {workspace.put_back(snap)}", file=sys.stderr)
        return code
    return single.run(variants[0].name, args.name, cmds[0][4:], args.temp, again)


def command_again(argv: list[str]) -> str:
    """The command that runs what was asked again, as the person typed it: `make recipe NAME=...`
    under make (MAKELEVEL), else `python -m cnn_denoise.recipes ...`."""
    if os.environ.get("MAKELEVEL") and argv[:1] == ["run"] and len(argv) > 1:
        rest, sets, force = argv[2:], [], False
        while rest:
            item = rest.pop(0)
            if item in ("-S", "--set") and rest:
                sets.append(rest.pop(0))
            elif item in ("-f", "--force"):
                force = True
        target = "make sweep" if argv[1] == "sweep" else f"make recipe NAME={shlex.quote(argv[1])}"
        return target + (" FORCE=1" if force else "") + (f" SET={shlex.quote(' '.join(sets))}" if sets else "")
    return shlex.join(["python", "-m", "cnn_denoise.recipes", *argv])


def share_cores(jobs: int) -> None:
    """Give each of the `jobs` experiments a sweep runs at once its share of the cores this process
    may use, as OMP_NUM_THREADS (read by torch at start; the sweep's experiments and their stages
    inherit it), unless it is set: a torch process takes every core, and two of them at once on
    two cores spend CPU switching and waiting between their threads (bench/README.md)."""
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // max(1, jobs)))


def existing_experiments() -> set[str]:
    """The names `dvc exp list` knows in this repository (every commit's)."""
    out = subprocess.run(["dvc", "exp", "list", "--all-commits", "--name-only"], capture_output=True, text=True)
    return set(out.stdout.split()) if out.returncode == 0 else set()


def fresh_name(name: str, taken: set[str]) -> str:
    """`name`, or name-2, name-3...: the first DVC has not used (running a recipe again is a new experiment)."""
    if name not in taken:
        return name
    return next(f"{name}-{i}" for i in range(2, len(taken) + 3) if f"{name}-{i}" not in taken)


def cli(argv=None) -> None:
    """`python -m cnn_denoise.recipes`: main() with one-line errors, told in a recipe user's terms."""
    run_stage(
        lambda: main(argv),
        interrupted="no experiment had started and the workspace is as it was; run the same command again",
        out_of_memory="a recipe or params.yaml may be too large to read; check the files in recipes/",
    )
