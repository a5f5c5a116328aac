"""cnn-denoise export: both ONNX graphs on onnxruntime equal PyTorch's model to 1e-5 (random and
speech-like inputs, several block sizes), and --engine onnx runs enhance and stream from the
.onnx file in a process where torch cannot be imported."""

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf
import torch
from helpers import model_settings
from test_live import CLI, RATE, masknet, speechlike

from cnn_denoise.models import checkpoint as ckpt
from cnn_denoise.models import model as cnn
from cnn_denoise.models.stepper import Stepper

TOL = 1e-5
NO_TORCH = """import sys
class Blocked:  # `import torch` fails, as where PyTorch is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("no torch here")
sys.meta_path.insert(0, Blocked())
from cnn_denoise.cli import main
main(sys.argv[1:])
"""


def lab_cnn():
    return cnn.build(model_settings([9, 1, 4], [1, 3, 2, 1], "linear", input_scale=30.0), seed=0).eval()


@pytest.fixture(scope="module", params=["masknet", "cnn"])
def exported(request, tmp_path_factory):
    """(checkpoint, model.onnx, model.stream.onnx) written by the real command."""
    folder = tmp_path_factory.mktemp(request.param)
    model = masknet(centred=2) if request.param == "masknet" else lab_cnn()
    ckpt.save(model, folder / "model.pt", {"sample_rate": RATE, "input_rms": 0.05})
    proc = subprocess.run([*CLI, "export", str(folder / "model.pt"), "-o", str(folder / "model.onnx")],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith(f"wrote {folder / 'model.onnx'} (whole signal)"), proc.stderr
    return folder / "model.pt", folder / "model.onnx", folder / "model.stream.onnx"


def inputs(n: int, stride: int):
    """A random signal and speech-like audio, (2, 1, n) float32 at about the training level."""
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((2, 1, n)) * 0.05
    speech = speechlike(RATE, n / RATE + 0.01, 2)[:n].T[:, None, :]
    return {"random": noise.astype(np.float32), "speech": np.ascontiguousarray(speech, np.float32)}


@pytest.mark.slow
def test_the_stream_graph_equals_pytorch_in_every_block_size(exported):
    path, _, stream = exported
    model = ckpt.load(path)
    stepper, session = Stepper(model), ort.InferenceSession(str(stream))
    names = [i.name for i in session.get_inputs()]
    S = stepper.stride
    for kind, x in inputs(480 * S, S).items():
        for block in (S, 10 * S, 160, 480 * S):
            torch_state, onnx_state = stepper.initial_state(2), [s.numpy() for s in stepper.initial_state(2)]
            worst = 0.0
            for a in range(0, x.shape[-1], block):
                with torch.no_grad():
                    want, *torch_state = stepper(torch.from_numpy(x[..., a : a + block]), *torch_state)
                feed = dict(zip(names, [x[..., a : a + block], *onnx_state], strict=True))
                got, *onnx_state = session.run(None, feed)
                worst = max(worst, float(np.abs(got - want.numpy()).max()))
            assert worst < TOL, (kind, block, worst)


@pytest.mark.slow
def test_the_whole_signal_graph_equals_pytorch(exported):
    path, whole, _ = exported
    model = ckpt.load(path)
    session = ort.InferenceSession(str(whole))
    S = Stepper(model).stride
    for n in (S, 37 * S, 2000 * S):
        for kind, x in inputs(n, S).items():
            with torch.no_grad():
                want = model(torch.from_numpy(x)).numpy()
            got = session.run(None, {"noisy": x})[0]
            assert got.shape == x.shape and np.abs(got - want).max() < TOL, (kind, n)


@pytest.mark.slow
def test_enhance_and_stream_run_on_onnxruntime_without_torch(exported, tmp_path):
    """--engine onnx -m model.onnx in a process where `import torch` fails: the same output as
    the PyTorch engine (within 16-bit rounding for enhance's file, 1e-5 for stream's floats)."""
    path, whole, _ = exported
    no_torch = [sys.executable, "-c", NO_TORCH]
    x = speechlike(RATE, 1.0, 1)
    src = tmp_path / "in" / "rec.wav"
    src.parent.mkdir()
    sf.write(src, x, RATE, subtype="PCM_16")
    for engine, cmd in (("onnx", no_torch), ("torch", CLI)):
        extra = ["--engine", "onnx", "-m", str(whole)] if engine == "onnx" else ["-m", str(path)]
        proc = subprocess.run([*cmd, "enhance", str(src), "-o", str(tmp_path / engine), *extra], capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    a, b = (sf.read(str(tmp_path / e / "rec.wav"))[0] for e in ("onnx", "torch"))
    assert np.abs(a - b).max() <= 1 / 32768

    raw = x.astype("<f4").tobytes()
    outs = {}
    for engine, cmd in (("onnx", no_torch), ("torch", CLI)):
        extra = ["--engine", "onnx", "-m", str(whole)] if engine == "onnx" else ["-m", str(path)]
        proc = subprocess.run([*cmd, "stream", "-", "-o", "-", "--level", "-25", "--rate", str(RATE), "--channels", "1",
                               "--format", "f32le", *extra], input=raw, capture_output=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outs[engine] = np.frombuffer(proc.stdout, "<f4")
    assert len(outs["onnx"]) == len(x) and np.abs(outs["onnx"] - outs["torch"]).max() < TOL


@pytest.mark.slow
def test_a_file_that_is_not_an_export_is_one_line(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08not really")
    proc = subprocess.run([*CLI, "stream", "--engine", "onnx", "-m", str(bad)], input="", capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert "write one with cnn-denoise export" in proc.stderr
