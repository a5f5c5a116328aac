"""The same floats on every x86-64 machine: the kernels torch, MKL and NumPy pick, pinned.

torch, the MKL inside it and NumPy each choose their kernels when they load, from the CPU they
find: AVX-512, AVX2 or plain SSE code, each adding in its own order, so a model trained on one
machine differed from the same run on another in the last bits of every weight, and so did the
metrics, the reports and DVC's hashes of them (a fresh clone could never match the committed
dvc.lock). pin() makes every machine take the code that every x86-64 CPU can run:

- ATEN_CPU_CAPABILITY=default: torch's own kernels (element-wise maths, reductions, its
  vectorised loops) in their baseline build rather than the AVX2 or AVX-512 one;
- MKL_CBWR=COMPATIBLE: MKL's conditional numerical reproducibility, its SSE2 branch on any
  CPU, Intel or AMD (torch's GEMMs and FFTs: the Toeplitz and FFT backends, the least-squares
  filter);
- NPY_DISABLE_CPU_FEATURES: NumPy's ufuncs in their baseline loops (STOI's logarithms and
  roots, the mixer's noise), not its AVX2 or AVX-512 ones;
- MKL_NUM_THREADS=1: MKL's GEMMs split their sums between threads (COMPATIBLE,STRICT does not
  stop it), so the lab's model after two epochs differed between one thread (a sweep's share,
  a one-core machine) and two; torch's own kernels keep their threads.

Each is read once, when its library loads, so pin() must run before torch and NumPy are
imported: the first lines of each stage that computes floats, and a sweep's warm process
before it preloads them. It changes nothing in a process that has already loaded them (a test
that runs a stage's main() in-process), and says so by returning False.

Not pinned, because they change no output here (tests/test_numerics.py runs the stages
under each): torch's and OpenBLAS's thread counts (the scores that did depend on torch's
take a fixed order: scoring/sets.py), and OpenBLAS's core type (NumPy's and SciPy's BLAS),
which some machines set to avoid kernels that are wrong on them.

CNN_DENOISE_NUMERICS=native leaves every library its fastest kernels, and its machine's bits.
"""

import os
import sys

SETTINGS = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    # every group above NumPy's x86-64-v2 baseline (numpy.show_runtime() names them)
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "MKL_NUM_THREADS": "1",
}
SWITCH = "CNN_DENOISE_NUMERICS"  # =native: no pinning
LIBRARIES = ("torch", "numpy")  # they read SETTINGS when they load

_pinned = False


def pin() -> bool:
    """Set SETTINGS in this process's environment, over the caller's, if torch and NumPy are not
    loaded yet; True when this process now computes with the pinned kernels."""
    global _pinned
    if os.environ.get(SWITCH) == "native":
        return False
    if not _pinned and any(name in sys.modules for name in LIBRARIES):
        return False  # too late to change what they picked; the environment is left as it was
    os.environ.update(SETTINGS)
    _pinned = True
    return True


def pinned() -> bool:
    """Whether pin() took effect in this process (a fork of it inherits the kernels)."""
    return _pinned
