"""The same bits on every machine, simulated on this one: `dvc repro` under the SIMD levels this
CPU has and under one, two and three threads writes the same outputs (dvc.lock's hashes), because
the stages pin their kernels (common/numerics.py) whatever the caller's environment says.

Another machine is simulated by the variables the libraries read to pick their kernels:
ATEN_CPU_CAPABILITY (torch), MKL_CBWR (MKL), NPY_DISABLE_CPU_FEATURES (NumPy), and the thread
count. A control shows the simulation is real: unpinned (CNN_DENOISE_NUMERICS=native), the same
variables change the model's bytes.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import make_project, set_params, sh

from cnn_denoise.common import numerics

# the small dataset with recordings long enough that the Toeplitz GEMMs take MKL's SIMD kernels
DATA = {"data.synthetic.pairs": 12, "data.synthetic.samples": 8000}


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def machines() -> dict[str, dict]:
    """{name: the variables a machine of that kind runs with}: this CPU's own (its widest SIMD),
    AVX2 where this CPU has it, and the SSE code every x86-64 runs; one, two and three threads."""
    out = {"this CPU, 2 threads": {"OMP_NUM_THREADS": "2"}}
    if "avx2" in cpu_flags():
        out["AVX2, 1 thread"] = {
            "ATEN_CPU_CAPABILITY": "avx2",
            "MKL_CBWR": "AVX2",
            "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
            "OMP_NUM_THREADS": "1",
        }
    out["SSE only, 3 threads"] = {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "COMPATIBLE",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
        "OMP_NUM_THREADS": "3",
    }
    return out


def outputs(repo: Path) -> dict[str, str]:
    """Every stage output's hash as dvc.lock records it: {path: md5}."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for stage in stages.values() for o in stage.get("outs", [])}


def caller(env: dict, machine: dict) -> dict:
    """env as a caller on that machine has it: none of the pinned variables but the machine's."""
    base = {k: v for k, v in env.items() if k not in numerics.SETTINGS and k != numerics.SWITCH}
    return base | {"OMP_NUM_THREADS": "2"} | machine


PROBE = (
    "from cnn_denoise.common import numerics; pinned = numerics.pin(); import numpy, torch; "
    "from numpy._core._multiarray_umath import __cpu_features__ as npy; "
    "print(pinned, torch.backends.cpu.get_cpu_capability(), npy['X86_V3'], npy['X86_V4'])"
)


@pytest.mark.slow
def test_a_stage_process_pins_the_kernels_over_the_callers_choice():
    """What `python stages/X.py` does first: the caller asked for AVX2 kernels; torch and NumPy
    load with their baseline ones. CNN_DENOISE_NUMERICS=native leaves the caller's choice."""
    flags = cpu_flags()
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="AVX2", NPY_DISABLE_CPU_FEATURES="")
    run = [sys.executable, "-c", PROBE]
    pinned = subprocess.run(run, env=env, capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert pinned == ["True", "DEFAULT", "False", "False"]
    native = subprocess.run(
        run, env=env | {numerics.SWITCH: "native"}, capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert native[:2] == ["False", "AVX2" if "avx2" in flags else "DEFAULT"]


def test_pin_changes_nothing_in_a_process_that_loaded_torch(monkeypatch):
    """A test running a stage's main() in-process: too late to pin; the environment is left alone."""
    import torch  # noqa: F401

    monkeypatch.setattr(numerics, "_pinned", False)
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert numerics.pin() is False and os.environ["ATEN_CPU_CAPABILITY"] == "avx2"


@pytest.mark.slow
def test_every_simulated_machine_writes_the_same_dvc_lock(tmp_path):
    repo, env = make_project(tmp_path)
    set_params(repo, **DATA)
    found = {}
    for name, machine in machines().items():
        sh(["dvc", "repro", "-f"], repo, caller(env, machine))
        found[name] = outputs(repo)
    assert len(found) >= 2, f"this CPU simulates no other machine: {sorted(found)}"
    first, *others = found
    assert {"models/model.pt", "data/baselines.json", "reports", "metrics/eval.json"} <= set(found[first])
    for name in others:
        differ = sorted(p for p in found[first] if found[first][p] != found[name].get(p))
        assert not differ, f"{name} differs from {first} in {differ}"
    # the control: unpinned, this CPU and one with SSE only train other models (the simulation is real)
    native = {}
    for name in ("this CPU, 2 threads", "SSE only, 3 threads"):
        out = tmp_path / f"native-{len(native)}.pt"
        run_env = caller(env, machines()[name]) | {numerics.SWITCH: "native"}
        cmd = [sys.executable, "stages/train.py", "data/split/train.pt", "data/split/test.pt", str(out), f"{out}.csv"]
        subprocess.run(cmd, cwd=repo, env=run_env, check=True, capture_output=True, timeout=300)
        native[name] = hashlib.md5(out.read_bytes()).hexdigest()
    assert len(set(native.values())) == 2, f"unpinned, both machines trained the same model: {native}"
