"""Recipes are data: every file in recipes/ is a valid set of params, and its `-S` arguments
say to DVC exactly what the file says."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from cnn_denoise.common import urls
from cnn_denoise.common.errors import PipelineError
from cnn_denoise.config import choices, params
from cnn_denoise.recipes import book


@pytest.mark.parametrize("name", book.names(REPO))
def test_every_recipe_is_valid_params(name):
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    for variant in book.load(name, REPO):
        p = params.Params.model_validate(book.set_dotted(base, variant.overrides))
        assert p.model_dump() != params.load(REPO / "params.yaml").model_dump()  # it changes something


def dvc_reads(args: list[str], params_file: Path) -> dict:
    """What DVC writes into params_file for `dvc exp run` with these -S args: DVC's own code
    (cli_parse.to_path_overrides, hydra.apply_overrides: Hydra's grammar, then OmegaConf)."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides, to_hydra_overrides

    [(_, overrides)] = to_path_overrides(args[1::2]).items()
    assert not any(o.is_sweep_override() for o in to_hydra_overrides(overrides)), overrides  # one experiment
    apply_overrides(str(params_file), overrides)
    return params.flatten(yaml.safe_load(params_file.read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("name", book.names(REPO))
def test_set_args_give_dvc_the_recipes_values(tmp_path, name):
    for variant in book.load(name, REPO):
        args = book.set_args(variant.overrides)
        assert args[0::2] == ["-S"] * len(variant.overrides)
        shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
        got = dvc_reads(args, tmp_path / "params.yaml")
        assert {k: got[k] for k in variant.overrides} == variant.overrides


def test_dvc_sets_one_kind_weight_and_keeps_the_others(tmp_path):
    """params.yaml names every kind's weight, so DVC's -S (Hydra, which will not add a key to a
    mapping) can set one: babble 2, the rest still 1, and the schema takes it."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    got = dvc_reads(["-S", "speech.kind_weights={babble:2}"], tmp_path / "params.yaml")
    weights = {k.rsplit(".", 1)[1]: v for k, v in got.items() if k.startswith("speech.kind_weights.")}
    assert weights == {k: 2 if k == "babble" else 1 for k in choices.NOISE_KINDS}
    assert params.load(tmp_path / "params.yaml").speech.kind_weights["babble"] == 2.0


def test_the_recipes_own_set_reads_values_as_dvc_does(tmp_path):
    """`python -m cnn_denoise.recipes run NAME -S key=value` reads each value with DVC's -S grammar
    (DVC's own code is the oracle): a mapping without spaces, bare words and paths, lists; a comma
    outside quotes (a sweep to DVC) is refused in one line."""
    items = ["train.lr=0.25", "model.taps=[20,20]", "data.train_from=data/speech", "evaluate.sets=[lab,speech]"]
    mine = book._parse_set([*items, "speech.kind_weights={babble:2}"])
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    dvc = dvc_reads([a for item in items for a in ("-S", item)], tmp_path / "params.yaml")
    assert {k: mine[k] for k in dvc if k in mine} == {k: dvc[k] for k in dvc if k in mine}
    assert len([k for k in dvc if k in mine]) == len(items) and mine["speech.kind_weights"] == {"babble": 2}
    with pytest.raises(PipelineError, match=r"-S train.lr=0.1,0.2: a comma makes a sweep .*; quote it"):
        book._parse_set(["train.lr=0.1,0.2"])
    with pytest.raises(
        PipelineError, match=r"recipe speech, experiment speech: .*; fix .*speech.yaml or the -S values"
    ):
        book.load("speech", REPO, extra=book._parse_set(["speech.kind_weights={babble:0}"]))


HOSTILE = [
    "https://host/a,b.zip",  # once two experiments (a sweep) with two URLs
    "https://host/d.zip?a=b=c&x=(1)#frag",
    "https://me:$DATA_PASSWORD@host/d.zip",
    "it's",
    'say "hi"',
    "a\\",
    "a\\'b",
    "?a=b=c",
    "[1,2]",
    "{a: 1}",
    " padded ",
    "",
    "null",
    "1e-3",
    "~x",
    "+x",
    "tab\there",
    "ünï",
    "aé",
    "linear",  # plain words go bare: still strings
    "False",
    "NaN",
    "x-1",
]


def test_hostile_strings_reach_dvc_as_one_value_each(tmp_path):
    """Each value as DVC's parser reads it, for a sweep of strings that Hydra's grammar takes
    as syntax unquoted (a comma, parentheses, =, #, quotes, brackets, null, numbers)."""
    base = {"data": {f"k{i}": "x" for i in range(len(HOSTILE))}, "model": {"taps": [1]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(base))
    overrides = {f"data.k{i}": v for i, v in enumerate(HOSTILE)} | {"model.taps": [79, 1]}
    assert dvc_reads(book.set_args(overrides), tmp_path / "params.yaml") == overrides


@pytest.mark.parametrize(
    "value, message",
    [
        ("https://me:${DATA_PASSWORD}@host/d.zip", "a value holding ${...} is an interpolation"),
        ("bell\x07", "the value holds a control character"),
        (float("nan"), "nan is not a finite number"),
        (__import__("datetime").date(2024, 1, 2), "a date value"),
    ],
)
def test_values_dvc_cannot_carry_are_refused_in_one_line(value, message):
    with pytest.raises(PipelineError, match=re.escape(message)):
        book.set_args({"data.url": value})


@pytest.mark.slow
def test_a_real_dvc_exp_run_takes_the_values_and_dollar_name_survives(tmp_path):
    """One `dvc exp run` in a small repository whose stage copies the params it saw, with a
    comma, quotes and parentheses in the values, and data.url holding a secret as $NAME; and
    the README's old ${NAME} form, which DVC fails on ("Interpolation key ... not found")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")} | {"DVC_NO_ANALYTICS": "1"}
    env |= {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    url = "https://me:$DATA_PASSWORD@host/d.zip"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"url": url, "name": "x"}, "train": {"epochs": 2}}))
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  show:\n    cmd: python -c \"import shutil; shutil.copy('params.yaml', 'seen.yaml')\"\n"
        "    params: [data.url, data.name, train.epochs]\n    outs: [seen.yaml]\n"
    )
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    name = 'it\'s (a, b) #1 = "x"'
    args = book.set_args({"data.name": name, "train.epochs": 3})
    ran = subprocess.run(["dvc", "exp", "run", *args], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    seen = yaml.safe_load((tmp_path / "seen.yaml").read_text())
    assert seen == {"data": {"url": url, "name": name}, "train": {"epochs": 3}}
    assert urls.secret_in(seen["data"]["url"]) is None
    (tmp_path / "params.yaml").write_text(
        (tmp_path / "params.yaml").read_text().replace("$DATA_PASSWORD", "${DATA_PASSWORD}")
    )
    subprocess.run(["git", "commit", "-qam", "braces"], cwd=tmp_path, env=env, check=True)
    old = subprocess.run(
        ["dvc", "exp", "run", "-S", "train.epochs=4"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert old.returncode != 0 and "Interpolation key 'DATA_PASSWORD' not found" in old.stdout + old.stderr


@pytest.mark.slow
def test_a_sweep_from_one_warm_process_gives_each_experiment_its_params(tmp_path):
    """`recipes run` of a two-variant sweep (warm.py: DVC's `exp run --temp` in forks of one
    process), in a small repository whose `python` stage writes the params, the thread count it
    saw and whether it ran in the warm process (torch already imported), and whose shell stage
    runs as DVC runs it: each experiment holds its own variant's params and its share of the
    cores; failing experiments are named with their logs and make the command exit 1."""
    from helpers import sweep_repo

    env = sweep_repo(
        tmp_path,
        {
            "recipes/sw.yaml": "description: two\nparams: {train.lr: 0.25}\nvariants:\n"
            "  - {name: short, params: {train.epochs: 3}}\n  - {name: long, params: {train.epochs: 4}}\n",
            "stage.py": "import os, sys, yaml\n"
            "warm = 'torch' in sys.modules\n"
            "train = yaml.safe_load(open('params.yaml'))['train']\n"
            "assert train['lr'] > 0.1\n"
            "seen = {**train, 'threads': os.environ.get('OMP_NUM_THREADS'), 'warm': warm, 'argv': sys.argv[1:]}\n"
            "yaml.safe_dump(seen, open('seen.yaml', 'w'))\n",
            "dvc.yaml": "stages:\n  show:\n    cmd: python stage.py ${train.epochs}\n    deps: [stage.py]\n"
            "    params: [train]\n    outs:\n      - seen.yaml:\n          cache: false\n"
            "  shell:\n    cmd: echo $DVC_STAGE > shell.txt\n    deps: [seen.yaml]\n"
            "    outs:\n      - shell.txt:\n          cache: false\n",
        },
    )
    sweep = [sys.executable, "-m", "cnn_denoise.recipes", "run", "sw"]
    ran = subprocess.run(sweep, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "sweep: short done" in ran.stderr and "sweep: long done" in ran.stderr, ran.stderr
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.split()

    def show(ref, path):
        return subprocess.run(["git", "show", f"{ref}:{path}"], cwd=tmp_path, capture_output=True, text=True).stdout

    seen = {ref.rsplit("/", 1)[1]: yaml.safe_load(show(ref, "seen.yaml")) for ref in refs}
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))  # two at a time (--jobs 2)
    assert {name: (t["epochs"], t["lr"], t["threads"], t["warm"], t["argv"]) for name, t in seen.items()} == {
        "short": (3, 0.25, threads, True, ["3"]),
        "long": (4, 0.25, threads, True, ["4"]),
    }
    assert {show(ref, "shell.txt").strip() for ref in refs} == {"shell"}  # the shell's stage ran, in each
    failing = sweep + ["-S", "train.lr=0.05"]  # the stage's assert fails: both experiments fail
    ran = subprocess.run(failing, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    for name in ("short-2", "long-2"):
        log = tmp_path / ".dvc" / "tmp" / "sweep" / f"{name}.log"
        assert f"sweep: {name} FAILED" in ran.stderr and str(log.relative_to(tmp_path)) in ran.stderr, ran.stderr
        assert "AssertionError" in log.read_text()  # the stage's own traceback, as python prints it
    assert "Traceback" not in ran.stderr


def test_share_cores_splits_the_cores_among_the_jobs_unless_set(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    book.share_cores(2)
    assert os.environ["OMP_NUM_THREADS"] == "2"
    monkeypatch.delenv("OMP_NUM_THREADS")
    book.share_cores(8)
    assert os.environ["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    book.share_cores(2)
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_a_recipe_run_refuses_dollar_brace_in_params_yaml(tmp_path):
    (tmp_path / "recipes").mkdir()
    text = (REPO / "params.yaml").read_text().replace("url: synthetic", "url: https://me:${DATA_PASSWORD}@h/d.zip")
    (tmp_path / "params.yaml").write_text(text)
    (tmp_path / "recipes" / "r.yaml").write_text("description: x\nparams: {train.epochs: 3}\n")
    with pytest.raises(PipelineError, match=re.escape("params.yaml: data.url writes ${...}, which dvc exp run -S")):
        book.load("r", tmp_path)


def test_extend_and_sweeps():
    [gate], [scratch] = book.load("linear-gate", REPO), book.load("lbfgs-scratch", REPO)
    assert scratch.overrides == {**gate.overrides, "train.init": "xavier"}
    sweep = book.load("sweep", REPO, extra={"train.epochs": 2})
    cmds = book.commands(sweep)
    assert all(c[:4] == ["dvc", "exp", "run", "--temp"] and c[-1] == "train.epochs=2" for c in cmds)
    assert [c[5] for c in cmds] == [v.name for v in sweep] and len(cmds) == len(sweep)


@pytest.mark.parametrize(
    "text, message",
    [
        ("description: x\nparams: {train.momentum: 0.9}\n", "'train.momentum' is not in params.yaml"),
        (
            "description: x\nparams: {train.optimizer: rmsprop}\n",
            "recipe bad, experiment bad: train.optimizer: Input should be",
        ),
        ("description: x\nparams: {train.init: linear}\n", "train.init linear needs model.taps [K, 1]"),
        ("description: x\nextend: bad\nparams: {}\n", "`extend` goes round in a circle"),
        ("just a string\n", "a recipe is a mapping"),
        (
            "description: x\nparams: [1, 2\n",
            "bad.yaml is not valid YAML (line 3, column 1: while parsing a flow sequence, expected ',' or ']'",
        ),
        ("description: x\nvariants: {a: 1}\n", "variants must be a list of {name, params}"),
        ("description: x\nvariants: [just, names]\n", "variant 1 must be a mapping with name and params"),
        ("description: x\nvariants: [{name: 'a b', params: {}}]\n", "variant 1: name 'a b' is not an experiment name"),
        ("description: [x]\nparams: {}\n", "description must be a line of text"),
        ("description: x\nextend: [a]\nparams: {}\n", "extend must name another recipe"),
        ("description: x\nparams: {1: 2}\n", "params must map params.yaml's dotted names to values"),
        ("description: x\nparams: {}\nmore: 1\n", "unknown key 'more'"),
        (
            "description: &a x\nparams: {train.lr: *b}\n",
            "bad.yaml is not valid YAML (line 2, column 20: found undefined alias 'b')",
        ),
        ("a: &a [*a]\nparams: {}\n", "an alias refers to a node that holds it"),
        (
            "description: x\nparams: {}\n---\nagain: 1\n",
            "bad.yaml is not valid YAML (line 3, column 1: expected a single document in the stream, but found another",
        ),
    ],
)
def test_bad_recipes_are_named(tmp_path, text, message):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "recipes" / "bad.yaml").write_text(text)
    with pytest.raises(PipelineError, match=re.escape(message)):
        book.load("bad", tmp_path)
    with pytest.raises(PipelineError, match="no recipe 'nope'.*choose one of bad"):
        book.load("nope", tmp_path)


LAUGHS = "\n".join(
    [
        "params:",
        '  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(f"  {n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
        "description: *i",
    ]
)  # a recipe's shape (params, description), so that `list` prints the description


def peak_of(cmd, cwd) -> tuple[subprocess.CompletedProcess, float]:
    """cmd (python -c SCRIPT ...) as its own process, its peak RSS (VmHWM, MiB) printed at exit,
    under a 4 GiB address-space limit so that a failure costs the machine nothing."""
    import resource

    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('VmHWM', "
        "open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr))\n"
        "sys.argv = ['recipes'] + sys.argv[1:]\n"
        "runpy.run_module('cnn_denoise.recipes', run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, *cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)),
    )
    text, _, peak = proc.stderr.rpartition("VmHWM")
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, text), int(peak.split()[0]) / 1024


def test_a_recipe_of_nested_aliases_is_refused_in_bounded_memory(tmp_path):
    """~700 bytes standing for 9^9 strings (a billion laughs): `recipes list` printed its
    description, expanding them (5 GB). Its size as a tree is counted before anything is built."""
    (tmp_path / "recipes").mkdir()
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "recipes" / "laughs.yaml").write_text(LAUGHS)
    assert len(LAUGHS) < 800
    proc, peak = peak_of(["list"], tmp_path)
    print(f"{len(LAUGHS)}-byte recipe of nested aliases: peak RSS {peak:.0f} MiB")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and lines == [
        f"error: {tmp_path / 'recipes' / 'laughs.yaml'} expands to more than 100000 values through its aliases "
        "(&name / *name); write the values out, without nested aliases"
    ], proc.stderr
    assert peak < 1024


def test_a_malformed_recipe_through_the_command_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "recipes").mkdir()
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "recipes" / "bad.yaml").write_text("description: x\nvariants: [{name: a, params: 3}]\n")
    monkeypatch.chdir(tmp_path)
    for argv in (["list"], ["run", "bad", "--dry-run"]):
        with pytest.raises(SystemExit) as exited:
            book.cli(argv)
        err = capsys.readouterr().err
        assert exited.value.code == 1 and err == (
            f"error: {tmp_path / 'recipes' / 'bad.yaml'}: variant 1 params must map params.yaml's dotted names to "
            "values; fix the file\n"
        ), err


def test_out_of_memory_is_told_in_recipe_terms(tmp_path, monkeypatch, capsys):
    def fail(*args):
        raise MemoryError

    monkeypatch.setattr(book.safeyaml, "read", fail)
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit):
        book.cli(["run", "linear-gate", "--dry-run"])
    err = capsys.readouterr().err
    assert (
        err == "error: out of memory; a recipe or params.yaml may be too large to read; check the files in recipes/\n"
    )


def test_a_set_key_params_yaml_lacks_is_refused_before_dvc_runs(tmp_path, monkeypatch, capsys):
    """`recipes run NAME -S train.epoch=5` (make recipe SET=...): one line with the closest key,
    exit 1, nothing run, params.yaml as it was; a recipe's own typo names the closest key too."""
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "recipes" / "typo.yaml").write_text("description: x\nparams: {model.tap: [9]}\n")
    before = (tmp_path / "params.yaml").read_bytes()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(book.subprocess, "run", None)  # nothing may reach DVC
    for argv, line in (
        (["run", "linear-gate", "-S", "train.epoch=5"], "-S train.epoch: not a key of params.yaml (nothing ran; "
         "params.yaml is as it was); did you mean train.epochs?"),
        (["run", "typo"], "recipe key 'model.tap' is not in params.yaml; did you mean model.taps?"),
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exited:
            book.cli(argv)
        assert exited.value.code == 1 and capsys.readouterr().err == f"error: {line}\n"
    assert (tmp_path / "params.yaml").read_bytes() == before
