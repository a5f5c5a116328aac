"""params.yaml as a typed schema: a wrong key, type or value is refused, by name, before any work.

Every stage validates the whole file (so a typo fails the first stage, not the last one) and
then reads only the keys that dvc.yaml declares for it.
"""

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from . import spec
from .errors import PipelineError

PositiveInt = Annotated[int, Field(strict=True, ge=1)]
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _yaml_number(value):
    """YAML 1.1 reads 1e-3 (no dot) as a string; take it as the number it says."""
    return float(value) if isinstance(value, str) and _NUMBER.fullmatch(value.strip()) else value


Number = Annotated[float, BeforeValidator(_yaml_number)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Synthetic(_Strict):
    pairs: PositiveInt
    samples: PositiveInt
    seed: int


class Data(_Strict):
    url: str = Field(min_length=1)
    sha256: str | None = Field(pattern=r"^[0-9a-fA-F]{64}$")
    timeout: Number = Field(gt=0)
    synthetic: Synthetic
    sample_rate: PositiveInt
    test_size: PositiveInt
    split_seed: int


class Model(_Strict):
    taps: list[PositiveInt] = Field(min_length=1)
    features: list[PositiveInt]
    last_activation: Literal[spec.ACTIVATIONS]
    input_scale: Number = Field(gt=0)
    backend: Literal[(spec.AUTO, *spec.BACKENDS)]

    @model_validator(mode="after")
    def _shapes(self):
        if why := spec.shape_problem(self.taps, self.features, mono=True):
            raise ValueError(why)
        return self


class Train(_Strict):
    optimizer: Literal[spec.OPTIMIZERS]
    loss: Literal[spec.LOSSES]
    init: Literal[spec.INITS]
    lr: Number = Field(gt=0)
    batch_size: PositiveInt | Literal[spec.FULL]
    epochs: PositiveInt
    seed: int
    device: Literal[spec.DEVICES]


class Evaluate(_Strict):
    lowpass_hz: Number = Field(gt=0)
    examples: int = Field(strict=True, ge=0)


class Params(_Strict):
    data: Data
    model: Model
    train: Train
    evaluate: Evaluate

    @model_validator(mode="after")
    def _linear_start(self):
        m = self.model
        if self.train.init == spec.LINEAR and (why := spec.linear_start_problem(m.taps, m.features, m.last_activation)):
            raise ValueError(why)
        return self


def one_line(err: ValidationError) -> str:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    whole = not key or isinstance(e["input"], dict)  # a check across keys: its message names them
    got = "" if whole or e["type"] in ("missing", "model_type") else f" (got {e['input']!r})"
    more = f" [and {len(err.errors()) - 1} more]" if len(err.errors()) > 1 else ""
    return f"{key + ': ' if key else ''}{msg}{got}{more}"


def load(path="params.yaml") -> Params:
    """Read and validate params.yaml; raise PipelineError naming the key on any problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} not found; run the stage from the project's root") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix its syntax") from exc
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(f"{path}: {one_line(exc)}; fix it in {path.name}") from None


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"model": {"taps": [40, 40]}} -> {"model.taps": [40, 40]}: keys as DVC and MLflow name them."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out
