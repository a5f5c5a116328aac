"""cnn-denoise enhance and the Denoiser API: exact streaming, every WAV format back as it came,
bounded memory, a real gain in SI-SDR with a model that denoises, and one line for bad input."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch
from helpers import lab_settings, model_settings

from cnn_denoise import cli
from cnn_denoise.enhance import denoiser, policy, which
from cnn_denoise.enhance.denoiser import Denoiser, resampled_blocks
from cnn_denoise.enhance.stream import Stream
from cnn_denoise.lab import synth
from cnn_denoise.lab.warmstart import linear_start
from cnn_denoise.models import checkpoint as ckpt
from cnn_denoise.models import model as cnn
from cnn_denoise.scoring import quality


@pytest.mark.slow
def test_stream_equals_the_whole_signal_at_once():
    torch.manual_seed(0)
    model = cnn.build(model_settings([7, 3, 4], [1, 3, 2, 1], input_scale=100.0), seed=0)
    x = torch.randn(2, 1, 500) * 1e-2
    whole = model(x).detach()
    for size in (3, 50, 333, 4096):  # blocks shorter and longer than every filter, and than the signal
        stream = Stream(model, channels=2)
        got = torch.cat([stream(x[..., a : a + size]) for a in range(0, x.shape[-1], size)], -1)
        torch.testing.assert_close(got, whole, rtol=1e-6, atol=1e-6 * whole.abs().max().item())
        assert stream.flush().shape[-1] == 0  # the lab's CNN: each block back as long as it went in


@pytest.mark.slow
@pytest.mark.parametrize("n", [501, 512])  # a last frame that zeros complete, and one that ends on a frame's edge
@pytest.mark.parametrize("centred", [0, 2])
def test_a_masknet_stream_in_any_blocks_equals_its_forward(n, centred):
    """Frames of S samples and an output lagging by 2 S (and the centred layers' frames ahead):
    blocks of any length (not whole frames), then flush(), give exactly the whole signal's forward."""
    torch.manual_seed(0)
    settings = model_settings([40, 40], [1, 5, 1], input_scale=30.0).model_copy(
        update={"arch": "masknet", "masknet": lab_settings("model").masknet.model_copy(
            update={"stride": 4, "filters": 6, "width": 5, "dilations": [1, 2, 4], "centred": centred})}
    )  # fmt: skip
    model = cnn.build(settings, seed=0).double()
    x = torch.randn(2, 1, n, dtype=torch.float64) * 1e-2
    whole = model(x)
    for size in (1, 3, 50, 333, 4096):
        stream = Stream(model, channels=2)
        got = torch.cat([*(stream(x[..., a : a + size]) for a in range(0, x.shape[-1], size)), stream.flush()], -1)
        torch.testing.assert_close(got, whole)


@pytest.mark.parametrize("up, down", [(2, 3), (3, 2), (320, 441), (1, 1)])
def test_resampled_blocks_equal_resample_poly_of_the_whole(up, down):
    x = np.random.default_rng(0).standard_normal((2, 20011))
    whole = scipy.signal.resample_poly(x, up, down, axis=-1)
    got = np.concatenate(list(resampled_blocks(lambda a, b: x[:, a:b], x.shape[1], up, down, block=1500)), axis=-1)
    assert got.shape == whole.shape
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-9 * np.abs(whole).max())


@pytest.fixture(scope="module")
def _denoising_checkpoint(tmp_path_factory):
    return denoising_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def model_path(_denoising_checkpoint, tmp_path):
    """A copy of the module's denoising checkpoint (a test may overwrite it)."""
    import shutil

    return Path(shutil.copy(_denoising_checkpoint, tmp_path / "model.pt"))


def denoising_model(tmp_path):
    """The recipe's start (src/cnn_denoise/lab/warmstart.py): the least-squares filter and a gate,
    fitted on synthetic training data; saved with its rate and level as the train stage does."""
    pairs = synth.make_pairs(8, 8000, seed=1)
    x, y = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    model = cnn.build(model_settings([31, 1], [1, 3, 1], "linear", input_scale=1000.0), seed=0)
    linear_start(model, x, y)
    path = tmp_path / "model.pt"
    ckpt.save(model, path, {"sample_rate": 32000, "input_rms": x.double().square().mean().sqrt().item()})
    return path


def speech_at(rate, seconds, channels, seed=0):
    """(noisy, clean) at `rate`, full-scale level: synthetic speech and band noise made at 32 kHz."""
    rng = np.random.default_rng(seed)
    n = int(32000 * seconds)
    clean = np.stack([synth.clean_speech(rng, n) for _ in range(channels)], -1)
    noisy = 0.5 * clean + np.stack([synth.band_noise(rng, n) for _ in range(channels)], -1)
    g = 0.4 / np.abs(noisy).max()
    up, down = rate // np.gcd(rate, 32000), 32000 // np.gcd(rate, 32000)
    return tuple(scipy.signal.resample_poly(s * g, up, down, axis=0) for s in (noisy, clean))


@pytest.mark.parametrize("rate, channels, subtype", [(48000, 2, "PCM_16"), (16000, 1, "FLOAT"), (44100, 1, "PCM_24")])
def test_files_come_back_in_their_own_rate_channels_length_and_format(tmp_path, rate, channels, subtype, model_path):
    noisy, _ = speech_at(rate, 0.7, channels)
    src = tmp_path / "in" / "rec.wav"
    src.parent.mkdir()
    sf.write(src, noisy, rate, subtype=subtype)
    cli.enhance([str(src), "-o", str(tmp_path / "out"), "-m", str(model_path)])
    a, b = sf.info(str(src)), sf.info(str(tmp_path / "out" / "rec.wav"))
    assert (b.samplerate, b.channels, b.frames, b.subtype, b.format) == (
        a.samplerate,
        a.channels,
        a.frames,
        a.subtype,
        a.format,
    )


def test_blocks_equal_the_whole_file_at_once(tmp_path, monkeypatch, model_path):
    """The file pipeline in blocks of 3000 samples against one pass over the whole recording:
    resample_poly, the model on the whole signal, resample_poly back, the level undone."""
    d = Denoiser.load(model_path)
    noisy, _ = speech_at(48000, 1.3, 2)
    monkeypatch.setattr(denoiser, "BLOCK", 3000)
    got = d(noisy, 48000)
    gain = d.input_rms / np.sqrt(np.mean(noisy**2))
    mid = torch.from_numpy(scipy.signal.resample_poly(noisy * gain, 2, 3, axis=0).T).float()[:, None, :]
    with torch.no_grad():
        out = d.model(mid)[:, 0].double().numpy().T
    whole = scipy.signal.resample_poly(out, 3, 2, axis=0)[: len(noisy)] / gain
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6 * np.abs(whole).max())
    assert got.shape == noisy.shape and got.dtype == noisy.dtype


@pytest.mark.slow
def test_a_denoising_model_raises_si_sdr_on_a_48k_stereo_file(tmp_path, model_path):
    noisy, clean = speech_at(48000, 2.0, 2, seed=3)
    src = tmp_path / "noisy.wav"
    sf.write(src, noisy, 48000, subtype="PCM_16")
    cli.enhance([str(src), "-o", str(tmp_path / "out"), "-m", str(model_path)])
    out, _ = sf.read(tmp_path / "out" / "noisy.wav")
    before = quality.si_sdr_db(torch.from_numpy(noisy.T), torch.from_numpy(clean.T))
    after = quality.si_sdr_db(torch.from_numpy(out.T), torch.from_numpy(clean.T))
    assert after > before + 10, (before, after)


def test_numpy_and_torch_in_the_same_shape_and_type(tmp_path, model_path):
    d = Denoiser.load(model_path)
    noisy, _ = speech_at(32000, 0.3, 1)
    mono = noisy[:, 0].astype(np.float32)
    a = d(mono, 32000)
    b = d(torch.from_numpy(mono), 32000)
    assert a.shape == mono.shape and a.dtype == np.float32 and isinstance(b, torch.Tensor) and b.dtype == torch.float32
    np.testing.assert_allclose(b.numpy(), a, rtol=1e-6)


def refused(capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exited.value.code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


@pytest.mark.parametrize(
    "case, message",
    [
        ("not_wav", "is not a recording libsndfile or PyAV can read"),
        ("empty", "holds no samples"),
        ("nan", "holds NaN or infinite samples"),
        ("bad_model", "is not a model checkpoint of this project"),
        ("missing", "no such file or folder"),
    ],
)
def test_bad_input_is_one_line_and_no_output(tmp_path, capsys, case, message, model_path):
    model = model_path
    src = tmp_path / "in.wav"
    if case == "not_wav":
        src.write_text("hello")
    elif case == "empty":
        sf.write(src, np.zeros((0, 1)), 16000)
    elif case == "nan":
        sf.write(src, np.array([0.1, np.nan, 0.2] * 100), 16000, subtype="FLOAT")
    elif case == "bad_model":
        sf.write(src, np.zeros(1000), 16000)
        model.write_bytes(b"not a checkpoint")
    elif case == "missing":
        src = tmp_path / "nope.wav"
    refused(capsys, ["enhance", str(src), "-o", str(tmp_path / "out"), "-m", str(model)], message)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_never_overwrites_an_input(tmp_path, capsys, model_path):
    src = tmp_path / "a.wav"
    sf.write(src, np.zeros(100), 16000)
    before = src.read_bytes()
    refused(capsys, ["enhance", str(src), "-o", str(tmp_path), "-m", str(model_path)], "is the input itself")
    assert src.read_bytes() == before


def test_an_output_past_full_scale_is_scaled_as_a_whole_and_said(tmp_path, capsys, model_path):
    noisy, _ = speech_at(32000, 0.5, 1)
    sf.write(
        tmp_path / "loud.wav", noisy / np.abs(noisy).max() * 0.99, 32000, subtype="PCM_16"
    )  # x ~ 0.5 y: y comes out 2x
    cli.enhance([str(tmp_path / "loud.wav"), "-o", str(tmp_path / "out"), "-m", str(model_path)])
    out, _ = sf.read(tmp_path / "out" / "loud.wav")
    assert "passed full scale; scaled by" in capsys.readouterr().err
    assert 0.99 < np.abs(out).max() <= 1.0  # scaled, not wrapped around


def test_denoiser_and_the_command_apply_the_same_clipping_rule(tmp_path, capsys, model_path):
    """One policy (policy.py) for both: an array whose output would pass full scale comes back
    scaled as a whole to policy.FULL_SCALE, with a warning, and equal to the command's output
    for the same samples in a float WAV."""
    noisy, _ = speech_at(32000, 0.5, 1)
    loud = noisy / np.abs(noisy).max() * 0.99
    with pytest.warns(UserWarning, match="Denoiser: the output would have passed full scale; scaled by"):
        out = Denoiser.load(model_path)(loud, 32000)
    assert np.abs(out).max() == pytest.approx(policy.FULL_SCALE)
    sf.write(tmp_path / "loud.wav", loud, 32000, subtype="DOUBLE")
    cli.enhance([str(tmp_path / "loud.wav"), "-o", str(tmp_path / "out"), "-m", str(model_path)])
    assert "loud.wav: the output would have passed full scale; scaled by" in capsys.readouterr().err
    np.testing.assert_allclose(sf.read(tmp_path / "out" / "loud.wav")[0], out[:, 0], rtol=0, atol=1e-6)


def peak_rss_mib(tmp_path, seconds: int) -> float:
    """Peak RSS of `cnn-denoise enhance` (its main(), in a fresh process) on a 48 kHz stereo
    16-bit file of `seconds`; the output must have every frame."""
    rng = np.random.default_rng(0)
    src = tmp_path / f"long{seconds}.wav"
    with sf.SoundFile(src, "w", 48000, 2, "PCM_16") as f:
        for a in range(0, seconds, 10):
            f.write(rng.standard_normal((48000 * min(10, seconds - a), 2)) * 0.05)
    # VmHWM: the high-water mark of the command's own address space. (ru_maxrss of a child
    # would also count the pytest process it was forked from, before exec.)
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('VmHWM', "
        "open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr))\n"
        "from cnn_denoise.cli import main\nmain(sys.argv[1:])\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "enhance",
            str(src),
            "-o",
            str(tmp_path / "out"),
            "-m",
            str(denoising_model(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert sf.info(str(tmp_path / "out" / src.name)).frames == 48000 * seconds
    peak_mib = int(proc.stderr.split("VmHWM")[-1].split()[0]) / 1024
    print(
        f"{seconds} s: peak RSS {peak_mib:.0f} MiB; "
        f"{[line for line in proc.stderr.splitlines() if 'real-time' in line][0]}"
    )
    return peak_mib


@pytest.mark.slow
def test_ten_minutes_at_48k_in_bounded_memory(tmp_path):
    """10 minutes of 48 kHz stereo: peak RSS under 500 MiB, and no more than for 20 seconds
    (plus 64 MiB of slack): memory does not grow with the recording's length."""
    short, long = peak_rss_mib(tmp_path, 20), peak_rss_mib(tmp_path, 600)
    assert long < 500 and long < short + 64


@pytest.mark.slow
def test_mlflow_uris_load_the_runs_checkpoint(tmp_path, monkeypatch, sqlite_store):
    import mlflow

    from cnn_denoise import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store)
    monkeypatch.setenv("CNN_DENOISE_LOG_MODEL", "0")
    monkeypatch.chdir(tmp_path)
    path = denoising_model(tmp_path)
    model, _ = ckpt.load_checkpoint(path)
    tracking.log_training({"train.lr": "1.0"}, [{"epoch": 0, "train_l1": 1.0, "test_l1": 1.0}], path)
    [run] = mlflow.search_runs(experiment_names=[tracking.EXPERIMENT], output_format="list")
    noisy, _ = speech_at(32000, 0.3, 1)
    expected = Denoiser.load(path)(noisy, 32000)
    np.testing.assert_array_equal(Denoiser.load(f"runs:/{run.info.run_id}")(noisy, 32000), expected)
    client = mlflow.MlflowClient()
    client.create_registered_model("cnn-denoise")
    version = client.create_model_version("cnn-denoise", f"runs:/{run.info.run_id}/checkpoint", run.info.run_id)
    client.set_registered_model_alias("cnn-denoise", "best", version.version)
    np.testing.assert_array_equal(Denoiser.load("models:/cnn-denoise@best")(noisy, 32000), expected)
    with pytest.raises(cli.PipelineError, match="no model checkpoint found"):
        Denoiser.load("runs:/0123456789abcdef")


# ---- issue 24: inputs nobody here wrote, through the real command ----


def enhanced(tmp_path, src, model, *extra, out="out", env=None):
    """`cnn-denoise enhance SRC -o tmp_path/out -m MODEL` as its own process; (process, peak RSS
    in MiB from VmHWM, the high-water mark of the command's own address space)."""
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('VmHWM', "
        "open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr))\n"
        "from cnn_denoise.cli import main\nmain(sys.argv[1:])\n"
    )
    argv = ["enhance", *map(str, [src] if isinstance(src, str | Path) else src), "-o", str(tmp_path / out)]
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv, "-m", str(model), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    text, _, peak = proc.stderr.rpartition("VmHWM")
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, text), int(peak.split()[0]) / 1024


def one_error_line(proc, message):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0], lines[0]
    return lines[0]


def wav_bytes_of(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("how", ["symlinked folder", "hard link", "bind mount"])
def test_an_output_that_is_an_input_by_another_path_is_refused(tmp_path, capsys, model_path, how):
    """Compared as files (device, inode), not names: the input folder through a symlink or a
    bind mount, or a hard link of the recording in the output folder, is the input itself."""
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "a.wav", np.random.default_rng(0).standard_normal(800) * 0.1, 16000)
    before = wav_bytes_of(folder)
    out = tmp_path / "out"
    if how == "symlinked folder":
        out.symlink_to(folder, target_is_directory=True)
    elif how == "hard link":
        out.mkdir()
        (out / "a.wav").hardlink_to(folder / "a.wav")
    else:
        out.mkdir()
        if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(folder), str(out)]).returncode != 0:
            pytest.skip("mount --bind needs root and a mount namespace that allows it")
    try:
        refused(
            capsys, ["enhance", str(folder / "a.wav"), "-o", str(out), "-m", str(model_path)], "is the input itself"
        )
    finally:
        if how == "bind mount":
            subprocess.run(["umount", str(out)], check=True)
    assert wav_bytes_of(folder) == before


def test_a_model_trained_on_silence_is_refused_not_written_as_dc(tmp_path, stage, capsys):
    """The pipeline's own train stage on all-silent recordings records a training level of 0;
    enhance once wrote full-scale DC (-1.0 in every sample) with it and exit status 0."""
    from helpers import write_params_copy

    d = tmp_path / "split"
    d.mkdir()
    for name, q in (("train", 8), ("test", 4)):
        torch.save({"x": torch.zeros(q, 1, 600), "y": torch.zeros(q, 1, 600)}, d / f"{name}.pt")
    write_params_copy(tmp_path, **{"train.epochs": 1, "train.batch_size": 4})
    trained = stage("train", d / "train.pt", d / "test.pt", tmp_path / "m.pt", tmp_path / "h.csv", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    sf.write(tmp_path / "talk.wav", speech_at(32000, 0.3, 1)[0], 32000, subtype="PCM_16")
    refused(
        capsys,
        ["enhance", str(tmp_path / "talk.wav"), "-o", str(tmp_path / "out"), "-m", str(tmp_path / "m.pt")],
        "was trained on silent recordings (its training level input_rms is 0), so it has no level to bring a "
        "recording to; retrain it on recordings that are not all silence",
    )
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def tampered(path: Path, change) -> Path:
    """The checkpoint at path, loaded as plain data, changed by change(checkpoint), saved back."""
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, path)
    return path


def _set(*keys_value):
    """A change of the checkpoint's value at keys: the value given, or value(old value)."""
    *keys, value = keys_value

    def change(checkpoint):
        node = checkpoint
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (
            _set("state_dict", "layers.0.H", lambda h: h.index_fill(0, torch.tensor([2]), float("nan"))),
            "layers.0.H holds NaN or infinite weights",
        ),
        (_set("spec", "input_scale", float("inf")), "spec input_scale is inf, not a number in (0, 1e+12]"),
        (_set("spec", "input_scale", 0.0), "spec input_scale is 0.0"),
        (_set("spec", "input_scale", -3.0), "spec input_scale is -3.0"),
        (_set("audio", "input_rms", float("nan")), "its training level (input_rms) is nan, not a finite number >= 0"),
        (_set("audio", "input_rms", 0.0), "was trained on silent recordings"),
        (_set("audio", "sample_rate", 0), "its training sample rate is 0, not a whole number of Hz"),
        (_set("audio", "sample_rate", -32000), "its training sample rate is -32000"),
        (_set("audio", "sample_rate", "32000"), "its training sample rate is '32000'"),
        (
            _set("spec", lambda spec: {**spec, "taps": [100_000, 1], "features": [1, 1024, 1]}),
            "declares 102401024 weights",
        ),
        (_set("spec", "last_activation", "relu"), "spec last_activation is 'relu'"),
        (
            _set("state_dict", "layers.0.H", lambda h: h[:1]),
            "layers.0.H is (1, 1, 3) torch.float32, expected (31, 1, 3)",
        ),
    ],
)
def test_bad_checkpoint_values_are_one_line_and_no_output(tmp_path, capsys, model_path, change, message):
    tampered(model_path, change)
    sf.write(tmp_path / "a.wav", speech_at(32000, 0.2, 1)[0], 32000, subtype="PCM_16")
    line = refused_line(
        capsys, ["enhance", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "-m", str(model_path)]
    )
    assert message in line and ("retrain it" in line or "give a checkpoint" in line), line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def refused_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exited.value.code == 1 and len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_wav_near_1e200_comes_back_finite_at_full_scale(tmp_path, capsys, model_path):
    """Float WAVs hold any finite number: the level is taken without squaring 1e200 (which is
    inf), so the model sees what it sees at any level, and the output is this recording's
    output at 0.4 peak, scaled to full scale as a whole (and said), not NaN."""
    noisy, _ = speech_at(32000, 0.5, 1)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "x.wav", noisy, 32000, subtype="DOUBLE")
    sf.write(tmp_path / "huge.wav", noisy * 1e200, 32000, subtype="DOUBLE")
    for src in (tmp_path / "in" / "x.wav", tmp_path / "huge.wav"):
        with pytest.raises(SystemExit) as exited:
            cli.main(["enhance", str(src), "-o", str(tmp_path / "out"), "-m", str(model_path)])
        assert exited.value.code == 0
    err = capsys.readouterr().err
    normal, _ = sf.read(tmp_path / "out" / "x.wav")
    huge, _ = sf.read(tmp_path / "out" / "huge.wav")
    peak = np.abs(normal).max()
    assert peak < 1 and "x.wav: the output would" not in err
    said = float(err.split("huge.wav: the output would have passed full scale; scaled by ")[1].split()[0])
    assert said == pytest.approx(policy.FULL_SCALE / (peak * 1e200), rel=1e-2)
    assert np.isfinite(huge).all() and np.abs(huge).max() == pytest.approx(policy.FULL_SCALE)
    np.testing.assert_allclose(huge, normal * (policy.FULL_SCALE / peak), rtol=0, atol=1e-6)


@pytest.mark.parametrize("subtype", ["GSM610", "G721_32", "NMS_ADPCM_16", "NMS_ADPCM_24", "NMS_ADPCM_32"])
def test_codecs_that_cannot_seek_are_read_and_written_back_in_their_format(tmp_path, model_path, subtype):
    """libsndfile decodes these front to back only (no seek): each pass reads the file again.
    The output, in the input's codec, is what the same samples give as a float WAV, encoded."""
    noisy, _ = speech_at(8000, 0.6, 1)
    sf.write(tmp_path / "coded.wav", noisy, 8000, subtype=subtype)
    decoded, _ = sf.read(tmp_path / "coded.wav", frames=sf.info(str(tmp_path / "coded.wav")).frames)
    (tmp_path / "ref").mkdir()
    sf.write(tmp_path / "ref" / "coded.wav", decoded, 8000, subtype="FLOAT")  # the same samples, seekable
    for src, out in ((tmp_path / "coded.wav", "out"), (tmp_path / "ref" / "coded.wav", "ref_out")):
        with pytest.raises(SystemExit) as exited:
            cli.main(["enhance", str(src), "-o", str(tmp_path / out), "-m", str(model_path)])
        assert exited.value.code == 0
    a, b = sf.info(str(tmp_path / "coded.wav")), sf.info(str(tmp_path / "out" / "coded.wav"))
    assert (b.subtype, b.frames, b.samplerate, b.channels) == (a.subtype, a.frames, a.samplerate, a.channels)
    got, _ = sf.read(tmp_path / "out" / "coded.wav", frames=b.frames)
    reference, _ = sf.read(tmp_path / "ref_out" / "coded.wav")
    sf.write(tmp_path / "expected.wav", reference, 8000, subtype=subtype)
    expected, _ = sf.read(tmp_path / "expected.wav", frames=b.frames)
    assert np.abs(got).max() > 0.05
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-4)


def mp3_in_wav(path: Path, frames: int = 50) -> Path:
    """A WAV of format tag 0x0055 holding MPEG-1 Layer III frames of silence (128 kbit/s, 44.1 kHz,
    mono: 417 bytes each, 1152 samples); its fact chunk declares more samples than it holds,
    as MP3 headers do."""
    import struct

    data = (bytes([0xFF, 0xFB, 0x90, 0xC4]) + bytes(413)) * frames
    fmt = struct.pack("<HHIIHHH", 0x55, 1, 44100, 16000, 1, 0, 12) + struct.pack("<HIHHH", 1, 2, 417, 1, 1393)
    chunks = [(b"fmt ", fmt), (b"fact", struct.pack("<I", frames * 1152 + 193)), (b"data", data)]
    body = b"WAVE" + b"".join(kind + struct.pack("<I", len(c)) + c for kind, c in chunks)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_mp3_in_a_wav_comes_back_as_16_bit_pcm_and_says_so(tmp_path, capsys, model_path):
    src = mp3_in_wav(tmp_path / "talk.wav")
    with pytest.raises(SystemExit) as exited:
        cli.main(["enhance", str(src), "-o", str(tmp_path / "out"), "-m", str(model_path)])
    assert exited.value.code == 0
    assert (
        "note: talk.wav: written as PCM_16 WAV (libsndfile cannot write its MPEG_LAYER_III)" in capsys.readouterr().err
    )
    out = sf.info(str(tmp_path / "out" / "talk.wav"))
    assert (out.subtype, out.samplerate, out.frames) == ("PCM_16", 44100, 50 * 1152)  # what it holds, not its header


@pytest.mark.parametrize("tag, name", [(0x2000, "AC-3"), (0x1234, "audio of WAV format tag 0x1234")])
def test_a_codec_neither_libsndfile_nor_pyav_decodes_is_refused_by_name(tmp_path, capsys, model_path, tag, name):
    import struct

    fmt = struct.pack("<HHIIHHH", tag, 1, 8000, 16000, 2, 16, 0)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 64) + bytes(64)
    (tmp_path / "x.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    refused(
        capsys,
        ["enhance", str(tmp_path / "x.wav"), "-o", str(tmp_path / "out"), "-m", str(model_path)],
        f"x.wav holds {name}, which neither libsndfile nor PyAV decodes (",
    )


@pytest.mark.slow
def test_a_2_kb_wav_at_1_hz_in_bounded_memory(tmp_path):
    """1000 samples at 1 Hz are 32 million at the model's 32 kHz: resampled in blocks bounded in
    samples on both sides of the resampler (it once took 3.2 GB), and back to 1000 samples."""
    src = tmp_path / "slow.wav"
    sf.write(src, np.random.default_rng(0).standard_normal(1000) * 0.1, 1, subtype="PCM_16")
    assert src.stat().st_size < 2100
    proc, peak = enhanced(tmp_path, src, denoising_model(tmp_path))
    print(f"1 Hz, 1000 samples: peak RSS {peak:.0f} MiB")
    assert proc.returncode == 0, proc.stderr
    assert sf.info(str(tmp_path / "out" / "slow.wav")).frames == 1000 and peak < 1024


@pytest.mark.slow
def test_1024_channels_in_bounded_memory(tmp_path):
    """64 MiB of 1024 channels at 48 kHz (it took 2 GB; a 256 MiB file 10.5 GB): blocks shrink
    with the channel count, so a pass holds about denoiser.BUDGET samples."""
    src = tmp_path / "array.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(src, "w", 48000, 1024, "PCM_16") as f:
        for _ in range(8):
            f.write(rng.standard_normal((4096, 1024)) * 0.05)
    proc, peak = enhanced(tmp_path, src, denoising_model(tmp_path))
    print(f"1024 channels, {src.stat().st_size >> 20} MiB: peak RSS {peak:.0f} MiB")
    assert proc.returncode == 0, proc.stderr
    out = sf.info(str(tmp_path / "out" / "array.wav"))
    assert (out.channels, out.frames) == (1024, 32768) and peak < 1024


@pytest.mark.slow
def test_a_tiny_checkpoint_declaring_a_huge_model_allocates_nothing(tmp_path):
    """A few KB whose spec declares 2 x 100000 taps of 1024 features (0.8 GB of weights, and
    the initialiser's copies: 1.6 GB once allocated before the weights were looked at)."""
    path = tmp_path / "huge.pt"
    torch.save(
        {
            "spec": {
                "taps": [100_000, 100_000],
                "features": [1, 1024, 1],
                "last_activation": "tanh",
                "input_scale": 1.0,
            },
            "state_dict": {"layers.0.H": torch.zeros(1, 1, 1), "layers.1.H": torch.zeros(1, 1, 1)},
            "audio": {"sample_rate": 32000, "input_rms": 1e-3},
        },
        path,
    )
    assert path.stat().st_size < 8192
    sf.write(tmp_path / "a.wav", np.zeros(100), 16000)
    proc, peak = enhanced(tmp_path, tmp_path / "a.wav", path)
    print(f"{path.stat().st_size} bytes declaring 204.8M weights: peak RSS {peak:.0f} MiB")
    one_error_line(proc, "its spec declares 204800000 weights, more than the 67108864 a model here may have")
    assert peak < 1024


def test_nothing_goes_to_the_temp_folder_and_nothing_stays(tmp_path, monkeypatch, model_path):
    """The output at the training level is kept in a file with no name beside the output (on
    the output's disk, where it once took ~8x the input in the temp folder); the output is
    written beside itself and renamed: nothing else remains. The temp folder here does not
    exist, so any use of it fails."""
    import tempfile

    sf.write(tmp_path / "a.wav", speech_at(48000, 0.5, 2)[0], 48000, subtype="PCM_24")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-temp-folder"))
    with pytest.raises(SystemExit) as exited:
        cli.main(["enhance", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "-m", str(model_path)])
    assert exited.value.code == 0
    assert os.listdir(tmp_path / "out") == ["a.wav"] and not (tmp_path / "no-temp-folder").exists()


HOLD_WRITER = """
import os, signal, sys
from cnn_denoise.common.atomic import atomic_path
with atomic_path(sys.argv[1], "enhance") as tmp:
    tmp.write_bytes(b"half an output")
    print("open", flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # what SIGKILL does to enhance while it writes: no cleanup
    sys.stdin.read()
    tmp.write_bytes(b"a whole output")
"""


def test_a_killed_writers_hidden_file_is_removed_at_the_next_start_a_live_ones_is_not(tmp_path, model_path):
    out = tmp_path / "out"
    dead = subprocess.run(
        [sys.executable, "-c", HOLD_WRITER, str(out / "a.wav"), "die"], capture_output=True, text=True, timeout=60
    )
    assert dead.returncode == -9
    live = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITER, str(out / "b.wav"), "live"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout.readline() == "open\n"
        left = sorted(p.name for p in out.iterdir())
        assert [n.split(".enhance-")[0] for n in left] == [".a.wav", ".b.wav"], left
        sf.write(tmp_path / "c.wav", speech_at(16000, 0.2, 1)[0], 16000)
        with pytest.raises(SystemExit) as exited:
            cli.main(["enhance", str(tmp_path / "c.wav"), "-o", str(out), "-m", str(model_path)])
        assert exited.value.code == 0
        assert sorted(p.name for p in out.iterdir()) == sorted([left[1], "c.wav"])  # a's debris gone, b's kept
        live.communicate("", timeout=60)
    finally:
        live.kill()
    assert live.returncode == 0 and (out / "b.wav").read_bytes() == b"a whole output"
    assert sorted(p.name for p in out.iterdir()) == ["b.wav", "c.wav"]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGKILL"])  # Ctrl-C; kill; the OOM killer, kill -9
def test_an_interrupted_enhance_leaves_nothing_and_says_what_to_do(tmp_path, signal_name):
    """Stopped in the model's pass: nothing in the output folder, not even hidden (the output at
    the training level is in a file with no name), and, where it can speak, its own advice."""
    import signal
    import time

    src = tmp_path / "slow.wav"
    # 3000 s at 1 Hz: the model's pass takes seconds after the output folder appears (1000 s once
    # ended inside the test's wait on a quiet machine, and the signal came too late)
    sf.write(src, np.random.default_rng(0).standard_normal(3000) * 0.1, 1, subtype="PCM_16")
    model = denoising_model(tmp_path)

    def as_from_a_terminal():  # Ctrl-C neither ignored nor held back, whatever an earlier test left this process
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    proc = subprocess.Popen(
        ["cnn-denoise", "enhance", str(src), "-o", str(tmp_path / "out"), "-m", str(model)],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "out").exists() and time.monotonic() < deadline:  # made just before the work
        time.sleep(0.05)
    time.sleep(0.5)  # inside the level pass or the model's
    proc.send_signal(getattr(signal, signal_name))
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    if signal_name == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL and lines == [], err
    else:
        assert proc.returncode == 130 and lines == [f"error: interrupted; {cli.HINTS['enhance']['interrupted']}"], err
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize(
    "raised, said",
    [
        (MemoryError, "error: out of memory; enhance holds a few blocks of a recording whatever its size"),
        (KeyboardInterrupt, "error: interrupted; no output was left half-written"),
    ],
)
def test_out_of_memory_and_interrupts_are_told_in_enhance_terms(
    tmp_path, capsys, monkeypatch, model_path, raised, said
):
    def fail(*args):
        raise raised

    monkeypatch.setattr(denoiser.Denoiser, "process", fail)
    sf.write(tmp_path / "a.wav", np.zeros(100), 16000)
    with pytest.raises(SystemExit):
        cli.main(["enhance", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "-m", str(model_path)])
    err = capsys.readouterr().err
    assert err.startswith(said) and err.count("\n") == 1 and "dvc" not in err and "train." not in err, err


@pytest.mark.parametrize("name", ["it's", 'say "x"', "back\\slash", "tab\there"])
def test_a_quote_in_a_promote_name_is_one_line(capsys, name):
    refused(capsys, ["promote", name], "holds a quote, a backslash or a control character, which MLflow's search")


def test_a_bad_alias_is_one_line(capsys):
    refused(capsys, ["promote", "linear-gate", "--alias", "v3"], "alias 'v3' is not one MLflow accepts")


@pytest.mark.parametrize(
    "noisy, rate, message",
    [
        (
            np.zeros(100, dtype=np.int16),
            16000,
            "expected float samples in [-1, 1] (as soundfile reads them), got int16",
        ),
        (np.zeros(100), 0, "the recording has a sample rate of 0, not a whole number of Hz from 1 to 768000"),
        (np.zeros(100), 16000.5, "has a sample rate of 16000.5"),
        (np.zeros((100, 0)), 16000, "expected samples (n,) or (n, channels) with n >= 1, got shape (100, 0)"),
        (np.array([0.1, np.inf]), 16000, "the recording holds NaN or infinite samples; clean it first"),
    ],
)
def test_denoiser_refuses_what_it_cannot_denoise(model_path, noisy, rate, message):
    with pytest.raises(cli.PipelineError, match=re.escape(message)):
        Denoiser.load(model_path)(noisy, rate)


@pytest.mark.slow
@pytest.mark.parametrize("rate, channels", [(16000, 1), (48000, 2)])
def test_a_masknet_checkpoint_through_the_command_with_score(tmp_path, capsys, rate, channels):
    """The speech recipe's kind of model (16 kHz, frames and a lag) on a 16 kHz mono and a 48 kHz
    stereo file: each comes back in its own rate, channels and length, equal to the array API,
    and --score prints DNSMOS before and after."""
    settings = model_settings([40, 40], [1, 5, 1], input_scale=30.0).model_copy(
        update={"arch": "masknet", "masknet": lab_settings("model").masknet.model_copy(
            update={"stride": 8, "filters": 8, "width": 8, "dilations": [1, 2]})}
    )  # fmt: skip
    path = tmp_path / "speech.pt"
    ckpt.save(cnn.build(settings, seed=0), path, {"sample_rate": 16000, "input_rms": 0.05})
    noisy, _ = speech_at(rate, 1.3, channels)
    src = tmp_path / "in" / "rec.wav"
    src.parent.mkdir()
    sf.write(src, noisy, rate, subtype="PCM_16")
    cli.enhance([str(src), "-o", str(tmp_path / "out"), "-m", str(path), "--score"])
    got, got_rate = sf.read(str(tmp_path / "out" / "rec.wav"), always_2d=True)
    assert got_rate == rate and got.shape == (len(noisy), channels)
    expected = Denoiser.load(path)(sf.read(str(src), always_2d=True)[0], rate)
    assert np.abs(got - expected).max() < 2 / 32768  # the file is 16-bit
    assert re.search(r"rec\.wav: DNSMOS SIG \d\.\d\d -> \d\.\d\d  BAK .* OVRL .*", capsys.readouterr().err)


def test_info_says_how_the_training_mix_was_drawn():
    """`cnn-denoise info` and enhance's note name the speeds, formant shifts, filters and kind
    weights a speech model heard (kinds of weight 1 not named), and say nothing of them when the
    mix had none (speed 1, all kinds alike)."""
    about = {"speech": "Debian pkg", "kinds": ["white", "babble"], "snr_db": [-5.0, 20.0], "speed": [1.0, 1.0]}
    assert which.heard({"trained_on": about}) == "Debian pkg with white, babble noise at -5 to 20 dB SNR"
    drawn = {**about, "speed": [0.85, 1.15], "formant": [0.9, 1.1], "eq": 0.375}
    drawn["kind_weights"] = {"white": 1.0, "babble": 2.0}
    assert which.heard({"trained_on": drawn}).endswith(
        ", played at 0.85 to 1.15 x speed, formants moved 0.9 to 1.1 x, through random filters (eq 0.375),"
        " drawn babble x2 as often"
    )


# ---- issue 38: what a checkpoint may ask of a stream ----


def masknet_checkpoint(path: Path, stride, filters, width, taps, dilations, rate=16000) -> Path:
    from cnn_denoise.models.masknet import MaskNet

    torch.manual_seed(0)
    model = MaskNet(stride, filters, width, taps, dilations, input_scale=30.0)
    ckpt.save(model, path, {"sample_rate": rate, "input_rms": 0.05})
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape, message",
    [
        # a few KB inside every bound of the spec: (1 + 63 x 2048 + 1 frames, 2 of lag) x 16 samples of
        # context (it ran, recomputing twice that with each block)
        ((16, 4, 4, 64, [1024, 1024]), f"its receptive field is {(1 + 63 * 2048 + 1 + 2) * 16} samples (129 s at"),
        # the corner of the bounds: 10^12 samples of context (it ended in "unexpected RuntimeError")
        ((4096, 1, 1, 64, [1 << 16] * 64), f"its receptive field is {(1 + 63 * 64 * 65536 + 1 + 2) * 4096} samples"),
        # 4 s of context, but 64 filters a sample: 21 million activations a call per channel
        ((1, 64, 1, 64, [1024]), "holds about 2.14e+07 activations per channel, more than the 16777216"),
    ],
)
def test_a_checkpoint_asking_a_huge_context_is_refused_at_load(tmp_path, shape, message):
    """A masknet's dilations, taps and stride set how much of the past a stream keeps and
    recomputes with each block: bounded (stream.MAX_CONTEXT, MAX_CONTEXT_FLOATS), refused in one
    line before any audio is read, in little memory and time, with nothing written."""
    path = masknet_checkpoint(tmp_path / "wide.pt", *shape)
    assert path.stat().st_size < 20_000_000
    sf.write(tmp_path / "a.wav", speech_at(16000, 1.0, 1)[0], 16000, subtype="PCM_16")
    proc, peak = enhanced(tmp_path, tmp_path / "a.wav", path)
    line = one_error_line(proc, message)
    assert "give a" in line and peak < 1024
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_speech_recipes_model_is_within_what_a_stream_allows():
    """The bounds leave room: the recipe's masknet (params.yaml with the speech recipe's centred
    layers) keeps a tenth of MAX_CONTEXT, and its calls are sized by its own activations."""
    from cnn_denoise.enhance import stream

    m = lab_settings("model").masknet.model_copy(update={"centred": 8})
    model = cnn.build(model_settings([40, 40], [1, 5, 1]).model_copy(update={"arch": "masknet", "masknet": m}))
    assert stream.demand_problem(model, 16000) is None
    assert model.receptive_field * 10 < stream.MAX_CONTEXT
    p = denoiser.plan(model, 2, 1, 3)
    assert p.chunk * p.group * stream.floats_per_sample(model) <= 2 * denoiser.MODEL_FLOATS


# ---- issue 38: --score in bounded memory, and only where there is speech ----


@pytest.mark.slow
def test_score_of_a_96k_8_channel_file_in_memory_that_does_not_grow_with_it(tmp_path):
    """--score read the whole file at its rate and channels in float64, and DNSMOS stacked its
    windows, nine times overlapping (96 kHz 8 channels: 30 s took 782 MB, without --score 400):
    now blocks, channels averaged, 16 kHz mono, one window at a time. (The model is told it
    was trained at 96 kHz, so enhance itself resamples nothing and takes little time.)
    Both lengths lie past the first few seconds, where the peak still rises as blocks and the
    first DNSMOS window fill (under load: 463-469 MiB at 1 s, 475-492 from 4 s to 36 s); the code
    before the fix grew about 6 MiB a second of input, nearly 100 MiB from 4 s to 20 s."""
    model = tampered(denoising_model(tmp_path), _set("audio", "sample_rate", 96000))
    rng, peaks = np.random.default_rng(0), {}
    for seconds in (4, 20):
        src = tmp_path / f"array{seconds}.wav"
        sf.write(src, rng.standard_normal((96000 * seconds, 8)) * 0.05, 96000, subtype="PCM_16")
        # one malloc arena: glibc opens more when threads meet on a busy machine, which measured
        # the load (+46 MiB under a loaded `make test`, +10 idle), not what the command holds
        proc, peaks[seconds] = enhanced(tmp_path, src, model, "--score", env=dict(os.environ, MALLOC_ARENA_MAX="1"))
        assert proc.returncode == 0, proc.stderr
        assert re.search(rf"array{seconds}\.wav: DNSMOS SIG \d\.\d\d -> \d\.\d\d", proc.stderr), proc.stderr
    print(f"96 kHz x 8 channels with --score: peak RSS {peaks[4]:.0f} MiB for 4 s, {peaks[20]:.0f} MiB for 20 s")
    assert peaks[20] < peaks[4] + 40


@pytest.mark.slow
def test_score_says_why_there_is_none_for_no_speech_and_keeps_to_the_scale(tmp_path, capsys, monkeypatch):
    """One sample was tiled into 9 s of DC and scored, and silence too: no score, and the line
    says why; a score past DNSMOS's 1-5 scale is printed at its end and named with its value."""
    model = denoising_model(tmp_path)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "one.wav", np.array([0.5]), 32000, subtype="PCM_16")
    sf.write(tmp_path / "in" / "quiet.wav", np.zeros(64000), 32000, subtype="PCM_16")
    sf.write(tmp_path / "in" / "talk.wav", speech_at(32000, 1.5, 1)[0], 32000, subtype="PCM_16")
    ins = [str(tmp_path / "in" / n) for n in ("one.wav", "quiet.wav")]
    assert cli.enhance([*ins, "-o", str(tmp_path / "out"), "-m", str(model), "--score"]) == 0
    err = capsys.readouterr().err
    assert "one.wav: no DNSMOS score: the input lasts 0.000 s, shorter than the 1 s scored" in err
    assert "quiet.wav: no DNSMOS score: the input is silent (RMS 0 of full scale)" in err
    assert "DNSMOS SIG" not in err and sf.info(str(tmp_path / "out" / "one.wav")).frames == 1
    from cnn_denoise.scoring import perceptual

    monkeypatch.setattr(perceptual, "dnsmos", lambda audio, rate: {"sig": 3.2, "bak": 5.3, "ovrl": 0.87})
    cli.enhance([str(tmp_path / "in" / "talk.wav"), "-o", str(tmp_path / "out2"), "-m", str(model), "--score"])
    line = [x for x in capsys.readouterr().err.splitlines() if "DNSMOS" in x][0]
    assert line == (
        "talk.wav: DNSMOS SIG 3.20 -> 3.20  BAK 5.00 -> 5.00  OVRL 1.00 -> 1.00; outside DNSMOS's 1-5 scale, "
        "shown at its end: BAK before 5.30, BAK after 5.30, OVRL before 0.87, OVRL after 0.87"
    )
