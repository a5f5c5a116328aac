"""Recipes are data: every file in recipes/ is a valid set of params, and its `-S` arguments
say to DVC exactly what the file says."""

import pytest
import yaml
from helpers import REPO

from cnn_denoise import params, recipes
from cnn_denoise.errors import PipelineError


@pytest.mark.parametrize("name", recipes.names(REPO))
def test_every_recipe_is_valid_params(name):
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    for variant in recipes.load(name, REPO):
        p = params.Params.model_validate(recipes.set_dotted(base, variant.overrides))
        assert p.model_dump() != params.load(REPO / "params.yaml").model_dump()  # it changes something


def test_set_args_read_back_as_yaml_give_the_files_values():
    """DVC parses each -S value as YAML: reading them back must give the recipe's values."""
    [variant] = recipes.load("linear-gate", REPO)
    args = recipes.set_args(variant.overrides)
    assert args[0::2] == ["-S"] * len(variant.overrides)
    back = {k: yaml.safe_load(v) for k, _, v in (a.partition("=") for a in args[1::2])}
    assert back == variant.overrides
    assert back["train.batch_size"] == "full" and back["model.taps"] == [79, 1]


def test_extend_and_sweeps():
    [gate], [scratch] = recipes.load("linear-gate", REPO), recipes.load("lbfgs-scratch", REPO)
    assert scratch.overrides == {**gate.overrides, "train.init": "xavier"}
    sweep = recipes.load("sweep", REPO, extra={"train.epochs": 2})
    cmds = recipes.commands(sweep, jobs=3)
    assert all(c[:4] == ["dvc", "exp", "run", "--queue"] and c[-1] == "train.epochs=2" for c in cmds[:-1])
    assert cmds[-1] == ["dvc", "queue", "start", "-j", "3"] and len({c[5] for c in cmds[:-1]}) == len(sweep)


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
    ],
)
def test_bad_recipes_are_named(tmp_path, text, message):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "recipes" / "bad.yaml").write_text(text)
    with pytest.raises(PipelineError, match=message.replace("[", r"\[").replace("(", r"\(")):
        recipes.load("bad", tmp_path)
    with pytest.raises(PipelineError, match="no recipe 'nope'.*choose one of bad"):
        recipes.load("nope", tmp_path)
