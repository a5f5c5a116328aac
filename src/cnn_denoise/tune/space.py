"""A search's space: a recipe's search: section checked whole, then sampled into -S overrides."""

import itertools
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.common.urls import redact as _redact
from cnn_denoise.config import params
from cnn_denoise.recipes import book

MAX_CORNERS = 20_000  # combinations of range ends and choices checked against the schema
# values a stepped range may hold: a step too small to move a float (1e-300) or to matter makes
# Optuna's grid arithmetic fail in every trial; a million is finer than any search here needs
MAX_STEPS = 1_000_000


# ---- the search section of a recipe ----


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(_Strict):
    low: float | int
    high: float | int
    log: bool = False
    step: float | int | None = None

    @model_validator(mode="after")
    def _order(self):
        if any(isinstance(v, bool) for v in (self.low, self.high, self.step)):
            raise ValueError("low, high and step are numbers, not true/false")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log range needs low > 0 and no step")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        if self.step is not None and (self.high - self.low) / self.step > MAX_STEPS:
            raise ValueError(
                f"step {self.step} makes more than {MAX_STEPS} values from {self.low} to {self.high}; "
                "take a larger step, or none"
            )
        return self

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))

    def ends(self) -> list:
        """The two values Optuna can draw at the edges (with a step, high rounds down to the grid)."""
        high = self.high
        if self.step is not None:
            high = self.low + int((self.high - self.low) // self.step) * self.step
        return [self.low, high]


class Choices(_Strict):
    choices: list[Any] = Field(min_length=1)


class Prune(_Strict):
    startup_trials: int = Field(default=2, ge=0)  # trials that finish before any is pruned
    warmup_epochs: int = Field(default=1, ge=0)  # epochs of a trial before it may be pruned


class Search(_Strict):
    metric: str = Field(default="test.l1", min_length=1)
    direction: Literal["minimize", "maximize"] = "minimize"
    trials: Annotated[int, Field(ge=1, le=100_000)]
    prune: Prune | Literal[False] = Field(default_factory=Prune)
    params: dict[str, Range | Choices] = Field(min_length=1)


class Tune(BaseModel):
    """A recipe's search: its name, the params every trial starts from, the search."""

    recipe: str
    base: dict  # dotted overrides of params.yaml (the recipe's params and -S)
    search: Search

    def space(self) -> dict:
        """What identifies the search: a study made from another space is not joined."""
        return {"recipe": self.recipe, "base": self.base, **self.search.model_dump(exclude={"trials"})}


def redact(url: str) -> str:
    """A storage URL as printed: without its password (a SQLite path as it is)."""
    return _redact(url) if "@" in url else url


def _primitive(value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _encode(value):
    """A choice as Optuna stores it: plain values as they are, lists and mappings as flow YAML."""
    return value if _primitive(value) else yaml.safe_dump(value, default_flow_style=True).strip()


def load(name: str, root=None, extra: dict | None = None) -> Tune:
    """The recipe's search, every corner of it checked against the params schema."""
    raw = book._read(name, root)
    path = book.folder(root) / f"{name}.yaml"
    if "search" not in raw:
        raise PipelineError(f"recipe {name} has no search section; add one ({__name__}'s doc) or pick another")
    if "variants" in raw:
        raise PipelineError(f"{path}: a search starts from one experiment's params, not variants; remove variants")
    try:
        search = Search.model_validate(raw["search"])
    except ValidationError as exc:
        raise PipelineError(f"{path}: search.{params.one_line(exc)}; fix the search section") from None
    [base] = book.load(name, root, extra)
    tree = yaml.safe_load((Path(root or Path.cwd()) / "params.yaml").read_text())
    keys = list(search.params)
    values = [spec.ends() if isinstance(spec, Range) else spec.choices for spec in search.params.values()]
    total = 1
    for v in values:
        total *= len(v)
    if total > MAX_CORNERS:
        raise PipelineError(
            f"{path}: the search has {total} corners to check (more than {MAX_CORNERS}); search fewer keys or choices"
        )
    for key, spec in search.params.items():
        for value in spec.choices if isinstance(spec, Choices) else ():
            if not _primitive(value) and isinstance(_encode(value), str) and yaml.safe_load(_encode(value)) != value:
                raise PipelineError(f"{path}: search.params.{key}: choice {value!r} does not survive YAML; simplify it")
    for corner in itertools.product(*values):
        setting = dict(zip(keys, corner, strict=True))
        try:
            params.Params.model_validate(book.set_dotted(tree, {**base.overrides, **setting}))
        except ValidationError as exc:
            shown = ", ".join(f"{k}={_encode(v)}" for k, v in setting.items())
            raise PipelineError(
                f"{path}: the search reaches params the schema refuses ({shown}): {params.one_line(exc)}; "
                "narrow the search"
            ) from None
    _check_metric(search.metric, root, path)
    return Tune(recipe=name, base=base.overrides, search=search)


def _check_metric(metric: str, root, path) -> None:
    """The metric must be a number in metrics/eval.json (as committed, when there is one)."""
    eval_json = Path(root or Path.cwd()) / "metrics" / "eval.json"
    try:
        known = params.flatten(json.loads(eval_json.read_text()))
    except (OSError, ValueError):
        return  # nothing run yet: a trial that lacks the metric fails and says so
    if metric not in known:
        numbers = ", ".join(k for k, v in known.items() if isinstance(v, int | float) and k.startswith("test."))
        raise PipelineError(f"{path}: search.metric {metric!r} is not in {eval_json.name}; choose one of {numbers}")


def suggest(trial, search: Search) -> dict:
    """The trial's params {dotted key: value as params.yaml holds it}."""
    out = {}
    for key, spec in search.params.items():
        if isinstance(spec, Choices):
            encoded = [_encode(c) for c in spec.choices]
            picked = trial.suggest_categorical(key, encoded)
            out[key] = spec.choices[encoded.index(picked)]
        elif spec.integer:
            out[key] = trial.suggest_int(key, spec.low, spec.high, step=spec.step or 1, log=spec.log)
        else:
            out[key] = trial.suggest_float(key, spec.low, spec.high, step=spec.step, log=spec.log)
    return out


def make_pruner(prune: dict | None):
    import optuna

    if not prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=prune["startup_trials"], n_warmup_steps=prune["warmup_epochs"])
