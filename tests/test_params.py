"""params.yaml's schema: the shipped file is valid and each kind of mistake is named by key."""

import pytest
import yaml
from helpers import REPO

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.config import params


def shipped():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_shipped_params_are_the_labs_task_4():
    p = params.load(REPO / "params.yaml")
    assert (p.model.taps, p.model.features, p.model.last_activation) == ([40, 40], [1, 5, 1], "tanh")
    assert (p.train.lr, p.train.batch_size, p.train.epochs) == (0.5, 32, 20)
    assert (p.data.url, p.data.synthetic.pairs, p.data.test_size) == ("synthetic", 300, 50)


def test_every_key_has_a_comment():
    for line in (REPO / "params.yaml").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not line.rstrip().endswith(":"):
            assert "#" in line, f"params.yaml line without a comment: {line!r}"


def edit(tmp_path, change):
    raw = shipped()
    change(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["train"].update(lr="fast"), r"train\.lr: Input should be a valid number.*'fast'"),
        (lambda p: p["train"].update(lr=-0.1), r"train\.lr: Input should be greater than 0"),
        (lambda p: p["train"].update(epochs=0), r"train\.epochs: Input should be greater than or equal to 1"),
        (lambda p: p["train"].update(ema=1.0), r"train\.ema: Input should be less than 1"),
        (lambda p: p["train"].update(history="epochs"), r"train\.history: Input should be 'set' or 'batches'"),
        (lambda p: p["train"].pop("seed"), r"train\.seed: Field required"),
        (lambda p: p["model"].update(features=[2, 5, 1]), r"model: features must start and end with 1"),
        (lambda p: p["model"].update(features=[1, 5, 5, 1]), r"model: features needs len\(taps\) \+ 1 = 3"),
        (lambda p: p["model"].update(taps=[40, 0]), r"model\.taps\.1: Input should be greater than or equal to 1"),
        (
            lambda p: p["model"].update(last_activation="relu"),
            r"model\.last_activation: Input should be 'tanh' or 'linear'",
        ),
        (lambda p: p["data"].update(sha256="abc"), r"data\.sha256: String should match pattern"),
        (
            lambda p: p["data"]["synthetic"].update(pairs=1.5),
            r"data\.synthetic\.pairs: Input should be a valid integer",
        ),
        # bounded to what a machine can do: refused at once, not after filling memory
        (lambda p: p["train"].update(seed=10**23), r"train\.seed: Input should be less than 9223372036854775808"),
        (
            lambda p: p["data"].update(timeout=float("inf")),
            r"data\.timeout: Input should be less than or equal to 3600",
        ),
        (
            lambda p: p["data"]["synthetic"].update(samples=10**11),
            r"data\.synthetic\.samples: Input should be less than or equal to 200000000",
        ),
        (
            lambda p: p["data"]["synthetic"].update(pairs=10**5),
            r"data\.synthetic: pairs x samples is 3200000000, more than 200000000",
        ),
        (
            lambda p: p["model"].update(features=[1, 100000, 1]),
            r"model\.features\.1: Input should be less than or equal to 1024",
        ),
        (
            lambda p: p["data"].update(sample_rate=1),
            r"data\.sample_rate: Input should be greater than or equal to 1000",
        ),
        (lambda p: p["train"].update(lr=float("nan")), r"train\.lr: Input should be a finite number"),
        (
            lambda p: p["evaluate"].update(lowpass_hz=20000.0),
            r"evaluate\.lowpass_hz 20000\.0 must be below half data\.sample_rate",
        ),
        (lambda p: p["train"].update(init="filterbank"), r"train\.init filterbank .* set model\.arch masknet"),
        (
            lambda p: (
                p["train"].update(init="filterbank"),
                p["model"].update(arch="masknet"),
                p["model"]["masknet"].update(filters=48),
            ),
            r"train\.init filterbank needs model\.masknet\.filters = 4 x stride = 64, not 48",
        ),  # fmt: skip
    ],
)
def test_mistakes_are_named(tmp_path, change, message):
    with pytest.raises(PipelineError, match=message) as err:
        params.load(edit(tmp_path, change))
    assert "\n" not in str(err.value) and "fix it in params.yaml" in str(err.value)


def test_missing_and_broken_file(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        params.load(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        params.load(tmp_path / "params.yaml")


def test_flatten():
    assert params.flatten({"model": {"taps": [40, 40]}, "train": {"lr": 0.5, "d": {"x": 1}}}) == {
        "model.taps": [40, 40],
        "train.lr": 0.5,
        "train.d.x": 1,
    }


def test_numbers_yaml_reads_as_strings_are_numbers(tmp_path):
    """YAML 1.1 reads `lr: 1e-3` (no dot) as the string '1e-3': taken as the number it says."""
    text = (
        (REPO / "params.yaml").read_text().replace("  lr: 0.5 ", "  lr: 1e-3 ").replace("timeout: 60.0", "timeout: 6e1")
    )
    (tmp_path / "params.yaml").write_text(text)
    p = params.load(tmp_path / "params.yaml")
    assert p.train.lr == 1e-3 and p.data.timeout == 60.0
    (tmp_path / "params.yaml").write_text(text.replace("lr: 1e-3", "lr: 1e-3x"))
    with pytest.raises(PipelineError, match="train.lr: Input should be a valid number"):
        params.load(tmp_path / "params.yaml")


def test_params_that_are_not_utf8(tmp_path):
    (tmp_path / "params.yaml").write_bytes(
        (REPO / "params.yaml").read_bytes().replace(b"# dataset source", b"# \xff\xfe source")
    )
    with pytest.raises(PipelineError, match=r"is not UTF-8 text \(byte [0-9]+\); save it as UTF-8"):
        params.load(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["speech"].update(kinds=["white", "rain"]), r"speech\.kinds\.1: Input should be 'band', 'white'"),
        (lambda p: p["speech"].update(snr_db=[20.0, -5.0]), r"speech\.snr_db \[20.0, -5.0\] must be \[low, high\]"),
        (lambda p: p["speech"].update(level_db=[-30.0, 5.0]), r"speech\.level_db\.1: Input should be less than or"),
        (lambda p: p["speech"].update(speed=[1.1, 0.9]), r"speech\.speed \[1.1, 0.9\] must be \[low, high\]"),
        (lambda p: p["speech"].update(speed=[0.1, 1.0]), r"speech\.speed\.0: Input should be greater than or equal"),
        (lambda p: p["speech"].update(formant=[1.2, 0.8]), r"speech\.formant \[1.2, 0.8\] must be \[low, high\]"),
        (lambda p: p["speech"].update(formant=[1.0, 3.0]), r"speech\.formant\.1: Input should be less than or equal"),
        (lambda p: p["speech"].update(eq=0.6), r"speech\.eq: Input should be less than or equal to 0\.45"),
        (lambda p: p["model"]["masknet"].update(dropout=1.0), r"model\.masknet\.dropout: Input should be less than 1"),
        (
            lambda p: p["speech"].update(kinds=["white"], kind_weights={"babble": 2}),
            r"speech\.kind_weights weighs babble, which speech\.kinds does not mix; add it to speech\.kinds or set",
        ),
        (
            lambda p: p["speech"].update(kind_weights={"white": 0}),
            r"speech\.kind_weights\.white: Input should be greater",
        ),
        (lambda p: p["speech"].update(kinds=["recorded"]), r"speech\.kinds has recorded .* but speech\.folder is null"),
        (lambda p: p["speech"]["voices"][0].update(sha256="abc"), r"speech\.voices\.0\.sha256: String should match"),
        (lambda p: p["speech"].update(voices=[]), r"speech\.voices: List should have at least 1 item"),
        (
            lambda p: p["speech"].update(voices=p["speech"]["voices"][:1] * 2),
            r"speech\.voices names a package twice; keep one entry each",
        ),
        (
            lambda p: p["speech"].update(validation_voices=1.0),
            r"speech\.validation_voices: Input should be less than 1",
        ),
        (lambda p: p["speech"].update(trim_db=6.0), r"speech\.trim_db: Input should be less than 0"),
        (
            lambda p: p["speech"]["matrix"].update(bands=[[5.0, -5.0]]),
            r"an SNR band \[5.0, -5.0\] must be \[low, high\]",
        ),
        (
            lambda p: p["speech"].update(test_fraction=0.5, babble_fraction=0.45),
            r"leave at least 10% of the utterances",
        ),
        (
            lambda p: p["data"].update(train_from="../elsewhere"),
            r"data\.train_from: must be a folder inside the project",
        ),
        (lambda p: p["evaluate"].update(sets=["lab", "lab"]), r"evaluate\.sets: names a set twice"),
        (lambda p: p["evaluate"].update(sets=["timit"]), r"evaluate\.sets\.0: Input should be 'lab' or 'speech'"),
        (
            lambda p: p["data"].update(sample_rate=16000),
            r"speech\.kinds has band .* cannot hold it; raise data\.sample_rate",
        ),
    ],
)
def test_speech_mistakes_are_named(tmp_path, change, message):
    with pytest.raises(PipelineError, match=message):
        params.load(edit(tmp_path, change))


@pytest.mark.parametrize(
    "key, closest",
    [("train.epoch", "train.epochs"), ("model.tap", "model.taps"), ("evaluate.set", "evaluate.sets"),
     ("data.synthetic.pair", "data.synthetic.pairs")],
)  # fmt: skip
def test_a_typo_names_the_closest_key(tmp_path, monkeypatch, key, closest):
    """A key the schema does not have (`dvc exp run -S +train.epoch=5`, DVC's own advice for a
    typo, writes one) names the closest key, and how to take it out: by hand, with git checkout
    after a workspace experiment, or in the -S of one that runs in a copy."""
    for var in ("DVC_EXP_NAME", "DVC_ROOT"):
        monkeypatch.delenv(var, raising=False)
    *parents, last = key.split(".")

    def add(p):
        node = p
        for part in parents:
            node = node[part]
        node[last] = 5

    path = edit(tmp_path, add)
    with pytest.raises(PipelineError) as err:
        params.load(path)
    assert str(err.value) == (
        f"{path}: {key} is not a key of params.yaml (did you mean {closest}?); "
        "remove it from params.yaml (git checkout params.yaml puts back the committed file)"
    )
    monkeypatch.setenv("DVC_EXP_NAME", "e")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    with pytest.raises(PipelineError, match=r"dvc exp run -S wrote it into params.yaml: git checkout params.yaml"):
        params.load(path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "elsewhere"))
    with pytest.raises(PipelineError, match=rf"fix the -S {key}=\.\.\. that started this experiment$"):
        params.load(path)
    assert params.unknown_key(key, yaml.safe_load((REPO / "params.yaml").read_text())).endswith(f"{closest}?")
    assert (
        params.unknown_key("+" + closest, None) is None
        and params.unknown_key("model.taps.0", {"model": {"taps": [1]}}) is None
    )
