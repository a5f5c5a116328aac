"""params.yaml as a typed schema: a wrong key, type or value is refused, by name, before any work.

Every stage validates the whole file (so a typo fails the first stage, not the last one) and
then reads only the keys that dvc.yaml declares for it.
"""

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.config import choices
from cnn_denoise.config.choices import MAX_SAMPLES

PositiveInt = Annotated[int, Field(strict=True, ge=1)]
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _yaml_number(value):
    """YAML 1.1 reads 1e-3 (no dot) as a string; take it as the number it says."""
    return float(value) if isinstance(value, str) and _NUMBER.fullmatch(value.strip()) else value


Number = Annotated[float, BeforeValidator(_yaml_number), Field(allow_inf_nan=False)]


# Bounds: what one machine can do in hours, not weeks, so a typo fails at once instead of
# filling memory first. Seeds: what torch.manual_seed takes.
Seed = Annotated[int, Field(strict=True, ge=0, lt=2**63)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Synthetic(_Strict):
    pairs: PositiveInt = Field(le=1_000_000)
    samples: PositiveInt = Field(le=MAX_SAMPLES)
    seed: Seed

    @model_validator(mode="after")
    def _size(self):
        if self.pairs * self.samples > MAX_SAMPLES:
            raise ValueError(
                f"pairs x samples is {self.pairs * self.samples}, more than {MAX_SAMPLES} samples; make fewer "
                "or shorter recordings"
            )
        return self


class Data(_Strict):
    url: str = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _no_secret(cls, url):
        from cnn_denoise.common.urls import redact, secret_in

        if what := secret_in(url):
            raise ValueError(
                f"{redact(url)} holds {what}, which params.yaml and dvc.lock would record; "
                "write it as ${NAME} (e.g. https://me:${DATA_PASSWORD}@host/data.zip) and export NAME"
            )
        return url

    sha256: str | None = Field(pattern=r"^[0-9a-fA-F]{64}$")
    timeout: Number = Field(gt=0, le=3600)  # seconds: finite
    max_mb: Annotated[int, Field(strict=True, ge=1, le=1 << 20)]
    synthetic: Synthetic
    sample_rate: Annotated[int, Field(strict=True, ge=1000, le=768_000)]  # Hz
    test_size: PositiveInt
    split_seed: Seed
    train_from: str = Field(pattern=r"^[\w./-]+$")  # a folder: it is written into dvc.yaml's paths

    @field_validator("train_from")
    @classmethod
    def _inside(cls, folder):
        if folder.startswith("/") or ".." in folder.split("/"):
            raise ValueError("must be a folder inside the project, such as data/split or data/speech")
        return folder


class MaskNet(_Strict):
    stride: PositiveInt = Field(le=4096)  # samples per frame
    filters: PositiveInt = Field(le=1024)
    width: PositiveInt = Field(le=1024)
    taps: PositiveInt = Field(le=64)
    dilations: list[Annotated[PositiveInt, Field(le=1 << 16)]] = Field(min_length=1, max_length=64)
    centred: int = Field(strict=True, ge=0, le=1 << 16)  # frames
    dropout: Number = Field(ge=0, lt=1)


class Model(_Strict):
    arch: Literal[choices.ARCHS]
    masknet: MaskNet
    taps: list[Annotated[PositiveInt, Field(le=100_000)]] = Field(min_length=1, max_length=100)
    features: list[Annotated[PositiveInt, Field(le=1024)]] = Field(max_length=101)
    last_activation: Literal[choices.ACTIVATIONS]
    input_scale: Number = Field(gt=0, le=1e12)
    backend: Literal[(choices.AUTO, *choices.BACKENDS)]

    @model_validator(mode="after")
    def _shapes(self):
        if why := choices.shape_problem(self.taps, self.features, mono=True):
            raise ValueError(why)
        return self


class Train(_Strict):
    optimizer: Literal[choices.OPTIMIZERS]
    loss: Literal[choices.LOSSES]
    init: Literal[choices.INITS]
    lr: Number = Field(gt=0, allow_inf_nan=False)  # no upper bound: a diverging run stops with its own error
    schedule: Literal[choices.SCHEDULES]
    history: Literal[choices.HISTORIES]
    ema: Number = Field(ge=0, lt=1)
    batch_size: Annotated[PositiveInt, Field(le=1_000_000)] | Literal[choices.FULL]
    epochs: PositiveInt = Field(le=1_000_000)
    seed: Seed
    device: Literal[choices.DEVICES]


class Evaluate(_Strict):
    lowpass_hz: Number = Field(gt=0, le=384_000)
    examples: int = Field(strict=True, ge=0, le=100)
    sets: list[Literal[choices.EVAL_SETS]] = Field(max_length=len(choices.EVAL_SETS))

    @field_validator("sets")
    @classmethod
    def _once(cls, sets):
        if len(set(sets)) != len(sets):
            raise ValueError(f"names a set twice: {sets}")
        return sets


Decibels = Annotated[float, BeforeValidator(_yaml_number), Field(allow_inf_nan=False, ge=-100, le=100)]
Level = Annotated[float, BeforeValidator(_yaml_number), Field(allow_inf_nan=False, ge=-100, le=0)]  # dBFS
Pair = dict(min_length=2, max_length=2)  # [low, high]
Ratio = Annotated[float, BeforeValidator(_yaml_number), Field(allow_inf_nan=False, ge=0.5, le=2)]  # speed, formant


def _range(pair, what: str):
    if pair[0] > pair[1]:
        raise ValueError(f"{what} [{pair[0]}, {pair[1]}] must be [low, high] with low <= high")
    return pair


class Package(_Strict):
    package: str = Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")
    version: str = Field(pattern=r"^[0-9A-Za-z.+~:-]+$")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class Matrix(_Strict):
    bands: list[Annotated[list[Decibels], Field(**Pair)]] = Field(min_length=1, max_length=20)
    segments: PositiveInt = Field(le=100_000)

    @field_validator("bands")
    @classmethod
    def _ordered(cls, bands):
        for band in bands:
            _range(band, "an SNR band")
        return bands


class Speech(_Strict):
    source: str = Field(min_length=1)
    voices: list[Package] = Field(min_length=1, max_length=50)
    music: Package
    folder: str | None = Field(min_length=1)
    min_seconds: Number = Field(gt=0, le=60)
    trim_db: Annotated[float, BeforeValidator(_yaml_number), Field(allow_inf_nan=False, ge=-120, lt=0)] | None
    validation_voices: Number = Field(ge=0, lt=1)
    seconds: Number = Field(gt=0, le=60)
    kinds: list[Literal[choices.NOISE_KINDS]] = Field(min_length=1, max_length=len(choices.NOISE_KINDS))
    snr_db: list[Decibels] = Field(**Pair)
    level_db: list[Level] = Field(**Pair)
    babble_talkers: list[Annotated[int, Field(strict=True, ge=1, le=50)]] = Field(**Pair)
    speed: list[Ratio] = Field(**Pair)
    formant: list[Ratio] = Field(**Pair)
    eq: Number = Field(ge=0, le=choices.EQ_MAX)
    kind_weights: dict[
        Literal[choices.NOISE_KINDS],
        Annotated[float, BeforeValidator(_yaml_number), Field(allow_inf_nan=False, gt=0, le=100)],
    ]
    test_fraction: Number = Field(gt=0, lt=1)
    babble_fraction: Number = Field(gt=0, lt=1)
    split_seed: Seed
    seed: Seed
    train_segments: PositiveInt = Field(le=1_000_000)
    test_segments: PositiveInt = Field(le=1_000_000)
    matrix: Matrix

    @field_validator("source")
    @classmethod
    def _no_secret(cls, source):
        from cnn_denoise.common.urls import redact, secret_in

        if what := secret_in(source):
            raise ValueError(f"{redact(source)} holds {what}, which params.yaml and dvc.lock would record; remove it")
        return source

    @model_validator(mode="after")
    def _consistent(self):
        _range(self.snr_db, "speech.snr_db")
        _range(self.level_db, "speech.level_db")
        _range(self.babble_talkers, "speech.babble_talkers")
        _range(self.speed, "speech.speed")
        _range(self.formant, "speech.formant")
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"speech.kinds names a kind twice: {self.kinds}")
        if len({v.package for v in self.voices}) != len(self.voices):
            raise ValueError("speech.voices names a package twice; keep one entry each")
        if extra := sorted(k for k, w in self.kind_weights.items() if w != 1 and k not in self.kinds):
            raise ValueError(
                f"speech.kind_weights weighs {', '.join(extra)}, which speech.kinds does not mix; add it to "
                "speech.kinds or set its weight to 1"
            )
        if choices.RECORDED in self.kinds and self.folder is None:
            raise ValueError(
                "speech.kinds has recorded (your noise WAVs) but speech.folder is null; set speech.folder to a folder "
                "with noise/*.wav, or drop recorded"
            )
        if self.test_fraction + self.babble_fraction >= 0.9:
            raise ValueError(
                f"speech.test_fraction + speech.babble_fraction is {self.test_fraction + self.babble_fraction}: "
                "leave at least 10% of the utterances for training"
            )
        return self


class Params(_Strict):
    data: Data
    model: Model
    train: Train
    evaluate: Evaluate
    speech: Speech

    @model_validator(mode="after")
    def _across_sections(self):
        m = self.model
        if self.train.init == choices.LINEAR and m.arch != choices.CNN:
            raise ValueError("train.init linear starts the lab's CNN as a filter; with model.arch masknet use xavier")
        if self.train.init == choices.LINEAR and (
            why := choices.linear_start_problem(m.taps, m.features, m.last_activation)
        ):
            raise ValueError(why)
        if self.train.init == choices.FILTERBANK and m.arch != choices.MASKNET:
            raise ValueError("train.init filterbank starts the masking CNN's filter banks; set model.arch masknet")
        if self.train.init == choices.FILTERBANK and m.masknet.filters != 4 * m.masknet.stride:
            raise ValueError(
                f"train.init filterbank needs model.masknet.filters = 4 x stride = {4 * m.masknet.stride}, "
                f"not {m.masknet.filters}; set filters so, or train.init xavier"
            )
        if self.evaluate.lowpass_hz >= self.data.sample_rate / 2:
            raise ValueError(
                f"evaluate.lowpass_hz {self.evaluate.lowpass_hz} must be below half data.sample_rate "
                f"({self.data.sample_rate / 2})"
            )
        if choices.BAND in self.speech.kinds and self.data.sample_rate <= 2 * 15500:
            raise ValueError(
                f"speech.kinds has band (the lab's 14-15.5 kHz noise) but data.sample_rate {self.data.sample_rate} Hz "
                "cannot hold it; raise data.sample_rate to 32000 or drop band"
            )
        return self


def one_line(err: ValidationError) -> str:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    whole = not key or isinstance(e["input"], dict)  # a check across keys: its message names them
    quiet = whole or e["type"] in ("missing", "model_type") or key == "data.url"  # a URL's message shows it redacted
    got = "" if quiet else f" (got {e['input']!r})"
    more = f" [and {len(err.errors()) - 1} more]" if len(err.errors()) > 1 else ""
    return f"{key + ': ' if key else ''}{msg}{got}{more}"


def schema_keys(model: type[BaseModel] = None, prefix: str = "") -> list[str]:
    """Every dotted key the schema names (sections and values): train, train.epochs, ..."""
    out = []
    for name, info in (model or Params).model_fields.items():
        out.append(prefix + name)
        nested = [a for a in (info.annotation, *get_args(info.annotation)) if isinstance(a, type)]
        for sub in (a for a in nested if issubclass(a, BaseModel)):
            out += schema_keys(sub, f"{prefix}{name}.")
    return out


def closest_key(key: str, tree: dict | None = None) -> tuple[bool, str | None]:
    """Whether `key` (dotted; DVC's -S prefixes + ++ ~ dropped) names a section or a value of
    params.yaml (`tree`), or an item of a list value (model.taps.0); and if not, the closest key
    that does (difflib), or None."""
    key, values = key.lstrip("+~"), flatten(tree or {})
    known = set(schema_keys()) | set(values)
    lists = [k for k, v in values.items() if isinstance(v, list)]
    if key in known or any(key.startswith(k + ".") for k in lists):
        return True, None
    return False, nearest(key, known)


def nearest(key: str, known) -> str | None:
    """The key of `known` closest to `key` as difflib measures it, if any is close."""
    close = difflib.get_close_matches(key, sorted(set(known) - {key}), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key(key: str, tree: dict | None = None) -> str | None:
    """None for a key of params.yaml, else "train.epoch is not a key of params.yaml; did you mean
    train.epochs?" (closest_key)."""
    ok, close = closest_key(key, tree)
    if ok:
        return None
    return f"{key.lstrip('+~')} is not a key of params.yaml" + (f"; did you mean {close}?" if close else "")


def _typo_fix(path: Path, key: str) -> str:
    """How to take a key that is no param out of params.yaml: by hand, or, when `dvc exp run -S`
    wrote it into the workspace (DVC_EXP_NAME set, DVC_ROOT here), git checkout."""
    root = os.environ.get("DVC_ROOT")
    if os.environ.get("DVC_EXP_NAME") and root and Path(root).resolve() != Path.cwd().resolve():
        return f"fix the -S {key}=... that started this experiment"  # a copy: the workspace is not touched
    if os.environ.get("DVC_EXP_NAME"):
        return (
            f"dvc exp run -S wrote it into {path.name}: git checkout {path.name} metrics && dvc checkout "
            "puts the workspace back"
        )
    return f"remove it from {path.name} (git checkout {path.name} puts back the committed file)"


def load(path="params.yaml") -> Params:
    """Read and validate params.yaml; raise PipelineError naming the key on any problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except FileNotFoundError:
        raise PipelineError(f"{path} not found; run the stage from the project's root") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix its syntax") from exc
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "extra_forbidden":  # a key the schema does not have: the nearest of the others
            key = ".".join(map(str, first["loc"]))
            close = nearest(key, set(schema_keys()) | set(flatten(raw)))
            near = f" (did you mean {close}?)" if close else ""
            raise PipelineError(f"{path}: {key} is not a key of params.yaml{near}; {_typo_fix(path, key)}") from None
        raise PipelineError(f"{path}: {one_line(exc)}; fix it in {path.name}") from None


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"model": {"taps": [40, 40]}} -> {"model.taps": [40, 40]}: keys as DVC and MLflow name them."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out
