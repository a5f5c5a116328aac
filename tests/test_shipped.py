"""The shipped speech model: its card says what it is, `info` prints it, and `enhance` takes it
when no model of the user's is registered."""

import json

import pytest

from cnn_denoise import cli
from cnn_denoise.enhance import which
from cnn_denoise.models import checkpoint as ckpt
from cnn_denoise.models import shipped
from cnn_denoise.models.masknet import MaskNet


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """shipped/ in a temporary folder, so the test never touches the project's."""
    where = tmp_path / "shipped"
    monkeypatch.setattr(shipped, "FOLDER", where)
    monkeypatch.setattr(shipped, "WEIGHTS", where / "speech.pt")
    monkeypatch.setattr(shipped, "CARD", where / "speech.json")
    return where


def small_checkpoint(path):
    net = MaskNet(stride=4, filters=16, width=5, taps=3, dilations=[1, 2], input_scale=30.0)
    audio = {
        "sample_rate": 16000,
        "input_rms": 0.01,
        "trained_on": {"speech": "Debian a-voice 1.0", "kinds": ["white"], "voices": {"test": ["b/v"]}},
    }
    ckpt.save(net, path, audio)
    return net


def test_ship_copies_the_weights_and_writes_a_card(folder, tmp_path):
    net = small_checkpoint(tmp_path / "m.pt")
    scores = tmp_path / "bench.json"
    scores.write_text(json.dumps({"headline": ["+6.1 dB SI-SDR over the noisy input"]}))
    card = shipped.ship(str(tmp_path / "m.pt"), "speech", "10 s here", str(scores))
    assert shipped.WEIGHTS.read_bytes() == (tmp_path / "m.pt").read_bytes()
    assert json.loads(shipped.CARD.read_text()) == card == shipped.card()
    assert card["weights"] == sum(p.numel() for p in net.parameters())
    assert card["latency_ms"] == pytest.approx(1000 * net.latency / 16000)
    assert card["trained_on"]["speech"] == "Debian a-voice 1.0" and card["recipe"] == "speech"
    assert any("+6.1 dB" in line for line in shipped.lines(card))


def test_info_prints_the_card_of_the_shipped_model(folder, tmp_path, capsys):
    small_checkpoint(tmp_path / "m.pt")
    shipped.ship(str(tmp_path / "m.pt"), "speech", "10 s here")
    cli.info([str(shipped.WEIGHTS)])
    out = capsys.readouterr().out
    assert "shipped      speech recipe" in out and "a-voice 1.0" in out and "held out: b/v" in out


def test_enhance_takes_the_shipped_model_when_nothing_is_registered(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
    assert which.default_model() == "models/model.pt"  # nothing shipped yet: the pipeline's
    small_checkpoint(tmp_path / "m.pt")
    shipped.ship(str(tmp_path / "m.pt"), "speech", "10 s here")
    assert which.default_model() == str(shipped.WEIGHTS)
    assert not (tmp_path / "none").exists()  # no store made to find out


def test_a_bad_scores_file_is_refused_in_one_line(folder, tmp_path):
    small_checkpoint(tmp_path / "m.pt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(cli.PipelineError, match="not a bench JSON"):
        shipped.ship(str(tmp_path / "m.pt"), "speech", "10 s", str(tmp_path / "bad.json"))
    assert not shipped.WEIGHTS.exists()


@pytest.mark.slow
def test_the_shipped_model_denoises_with_no_training_and_no_registry(tmp_path):
    """The project's own shipped file, through the real command, in a folder with no models/ and
    no store: 16 kHz mono and 48 kHz stereo come back at their rate and shape, quieter noise."""
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np
    import soundfile as sf

    assert shipped.available(), "the speech model is shipped with the project (models/shipped/)"
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    voice = 0.1 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    sf.write(tmp_path / "mono.wav", voice + 0.05 * rng.standard_normal(len(t)), 16000)
    stereo = np.repeat(np.interp(np.arange(96000) / 3, np.arange(len(t)), voice)[:, None], 2, 1)
    sf.write(tmp_path / "stereo.wav", stereo + 0.05 * rng.standard_normal(stereo.shape), 48000)
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "cnn-denoise"), "enhance", "mono.wav", "stereo.wav", "-o", "out"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    for name, rate, channels in (("mono.wav", 16000, 1), ("stereo.wav", 48000, 2)):
        info = sf.info(tmp_path / "out" / name)
        assert (info.samplerate, info.channels) == (rate, channels)
    noisy, _ = sf.read(tmp_path / "mono.wav")
    clean, _ = sf.read(tmp_path / "out" / "mono.wav")
    residual = lambda x: np.mean((x - voice) ** 2)  # noqa: E731
    assert residual(clean) < residual(noisy)
    assert not (tmp_path / "none").exists() and not (tmp_path / "models").exists()


@pytest.mark.slow
def test_register_puts_the_shipped_model_in_the_store_once_with_its_card(tmp_path, mlflow_server):
    """`python -m cnn_denoise.models.shipped --register` (twice: one version) against a real MLflow
    server, read back through its REST API as the UI reads it; `enhance -m
    models:/cnn-denoise@shipped` then writes the same bits as `enhance -m` of the shipped file."""
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np
    import soundfile as sf
    from helpers import rest

    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "MLFLOW_TRACKING_URI": mlflow_server}
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-m", "cnn_denoise.models.shipped", "--register"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0 and "version 1 (@shipped)" in run.stderr.splitlines()[-1], run.stderr
    (version,) = rest(mlflow_server, "model-versions/search", filter="name='cnn-denoise'")["model_versions"]
    aliased = rest(mlflow_server, "registered-models/alias", name="cnn-denoise", alias="shipped")["model_version"]
    assert aliased["version"] == version["version"] and shipped.card()["headline"][0] in version["description"]
    assert "enhance with no -m" in version["description"]
    tags = {
        t["key"]: t["value"] for t in rest(mlflow_server, "runs/get", run_id=version["run_id"])["run"]["data"]["tags"]
    }
    assert tags["kind"] == "shipped" and tags["git_commit"] == shipped.card()["commit"]
    rng = np.random.default_rng(1)
    sf.write(tmp_path / "in.wav", 0.05 * rng.standard_normal(8000), 16000)
    outs = []
    for model in ("models:/cnn-denoise@shipped", str(shipped.WEIGHTS)):
        out = tmp_path / f"out{len(outs)}"
        run = subprocess.run(
            ["cnn-denoise", "enhance", "in.wav", "-o", str(out), "-m", model],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        outs.append((out / "in.wav").read_bytes())
    assert outs[0] == outs[1]


def test_register_with_tracking_off_is_one_line_and_writes_no_store(tmp_path):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "CNN_DENOISE_TRACKING": "off", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    run = subprocess.run(
        [sys.executable, "-m", "cnn_denoise.models.shipped", "--register"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1 and run.stderr.strip().splitlines() == [
        "error: CNN_DENOISE_TRACKING=off: nothing is logged; unset it to register the shipped model"
    ], run.stderr
    assert list(tmp_path.iterdir()) == []
