"""make bench: seconds per training epoch of the lab's CNN with each MIMO-filter backend.

Measured side by side in one process, with this machine's float32 GEMM rate, so the ratios
hold even on a shared, noisy machine. Peak memory is measured per backend in a fresh
subprocess (ru_maxrss), and the pipeline's stages are timed end to end on the default data.
Writes bench/results.json and prints a table. Not a test: nothing here asserts a time.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from cnn_denoise.config import params
from cnn_denoise.config.choices import BACKENDS
from cnn_denoise.lab.filters import choose_backend
from cnn_denoise.models import model as cnn
from cnn_denoise.training.fit import exact_float32, pick_device

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"taps": [40, 40], "features": [1, 5, 1]}
RECIPE = "linear-gate"  # the recipe whose time make bench takes (train and evaluate on the default data)
PLAIN = "plain conv1d"  # the reference a user would write (PlainConv1dCNN)


def model_settings(taps, features, backend="auto"):
    """params.yaml's model section with this shape and backend: what model.build takes."""
    return params.load().model.model_copy(update={"taps": taps, "features": features, "backend": backend})


def lab_data(q: int, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(q, 1, n, generator=g).mul_(1e-3).to(device) for _ in range(2))


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def one_epoch(backend: str, x, y, batch: int = 32) -> float:
    """Seconds for one SGD epoch of the lab's CNN with a backend, or with PlainConv1dCNN ("plain")."""
    model = (
        PlainConv1dCNN(SPEC["taps"], SPEC["features"])
        if backend == PLAIN
        else cnn.build(model_settings(SPEC["taps"], SPEC["features"], backend=backend), seed=0)
    )
    return train_epoch(model.to(x.device), x, y, batch)


class PlainConv1dCNN(torch.nn.Module):
    """The lab's CNN as a user would write it with PyTorch's layers: causal Conv1d (pad K - 1
    both sides, keep the first N samples), no bias, tanh. The reference for `auto`'s speed."""

    def __init__(self, taps, features):
        super().__init__()
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv1d(f, g, k, padding=k - 1, bias=False)
            for k, f, g in zip(taps, features[:-1], features[1:], strict=True)
        )

    def forward(self, x):
        for conv in self.convs:
            x = torch.tanh(conv(x)[..., : x.shape[-1]])
        return x


def train_epoch(model, x, y, batch: int = 32) -> float:
    """Seconds for one SGD epoch (forward, L1 loss, backward, step) of `model` over x."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = torch.nn.L1Loss()
    sync(x.device)
    start = time.perf_counter()
    for i in range(0, x.shape[0], batch):
        loss = loss_fn(model(x[i : i + batch]), y[i : i + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(x.device)
    return time.perf_counter() - start


# `auto` against every exact backend, one knob of the lab's shape changed at a time, and the
# shapes of the recipes (recipes/*.yaml) as they are.
LAB_SHAPE = {"taps": 40, "features": [1, 5, 1], "samples": 32000, "batch": 32}
KNOBS = {
    "taps": [10, 40, 100, 200, 400],
    "features": [[1, 5, 1], [1, 16, 1], [1, 16, 16, 1], [1, 32, 32, 1]],
    "samples": [8000, 32000, 128000],
    "batch": [1, 8, 32, 128],
    "recipe": ["linear-gate"],
}


def shape_of(knob: str, value) -> dict:
    """The lab's shape with one knob changed, or a recipe's taps and features; taps per layer."""
    if knob == "recipe":
        from cnn_denoise.recipes import book

        overrides = book.load(value, ROOT)[0].overrides
        return {**LAB_SHAPE, "recipe": value, "taps": overrides["model.taps"], "features": overrides["model.features"]}
    shape = {**LAB_SHAPE, knob: value}
    return {**shape, "taps": [shape["taps"]] * (len(shape["features"]) - 1)}


MAX_ROUNDS, MIN_SECONDS = 15, 1.0  # the auto table's timing rounds: at most, and the fastest's total time at least


def auto_table(device, recordings: int = 32, repeats: int = 3) -> list[dict]:
    """For each shape: seconds per epoch of `recordings` recordings (one batch, if larger) with each fast backend
    (shift is the reference, far slower) and with `auto` (its pick per layer), and how far auto is off the fastest."""
    rows = []
    fast = [b for b in BACKENDS if b != "shift"]
    for knob, values in KNOBS.items():
        for value in values:
            shape = shape_of(knob, value)
            x, y = lab_data(max(recordings, shape["batch"]), shape["samples"], device)
            models = {
                b: cnn.build(model_settings(shape["taps"], shape["features"], backend=b), seed=0).to(device)
                for b in (*fast, "auto")
            }
            for model in models.values():
                train_epoch(model, x[: shape["batch"]], y[: shape["batch"]], shape["batch"])  # warm-up
            times, rounds = dict.fromkeys(models, float("inf")), 0
            # Round robin: a slow spell of a shared machine hits every backend alike. Short epochs get
            # more rounds (their best is noisier), until the fastest has been timed MIN_SECONDS in all.
            names = list(models)
            while rounds < repeats or (rounds < MAX_ROUNDS and rounds * min(times.values()) < MIN_SECONDS):
                for b in (
                    names[rounds % len(names) :] + names[: rounds % len(names)]
                ):  # each in every place of the order
                    times[b] = min(times[b], train_epoch(models[b], x, y, shape["batch"]))
                rounds += 1
            auto = times.pop("auto")
            picks = "+".join(
                choose_backend(k, f, g, device)
                for k, f, g in zip(shape["taps"], shape["features"], shape["features"][1:], strict=False)
            )
            best = min(times, key=times.get)
            rows.append(
                {
                    "knob": knob,
                    **shape,
                    "recordings": x.shape[0],
                    "rounds": rounds,
                    "seconds": times,
                    "auto_seconds": auto,
                    "fastest": best,
                    "auto": picks,
                    "auto_over_fastest": auto / times[best],
                }
            )
            print(
                f"auto {knob}={value}: "
                + ", ".join(f"{b} {t:.3f}" for b, t in times.items())
                + f", auto ({picks}) {auto:.3f}: "
                f"{auto / times[best]:.2f}x the fastest",
                file=sys.stderr,
            )
    return rows


def auto_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(KNOBS), figsize=(4 * len(KNOBS), 3.4), constrained_layout=True)
    for ax, knob in zip(axes, KNOBS, strict=True):
        mine = [r for r in rows if r["knob"] == knob]
        labels = [str(r[knob]).replace(" ", "") for r in mine]
        for b in mine[0]["seconds"]:
            ax.plot(labels, [r["seconds"][b] for r in mine], marker="o", label=b)
        ax.plot(labels, [r["auto_seconds"] for r in mine], "k--", marker="x", lw=1, label="auto")
        ax.set(
            title=f"{knob} (others as the lab)" if knob != "recipe" else "recipes' shapes",
            ylabel="s per epoch",
            yscale="log",
        )
        ax.tick_params(axis="x", rotation=30)
    axes[0].legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def useful_flops(q: int, n: int) -> float:
    """FLOPs an epoch needs: per layer 2 N F G K forward, as much for the weight gradient,
    and as much again for the input gradient except at the first layer."""
    total = 0.0
    for i, (k, f, g) in enumerate(zip(SPEC["taps"], SPEC["features"][:-1], SPEC["features"][1:], strict=True)):
        total += 2 * q * n * f * g * k * (2 if i == 0 else 3)
    return total


def gemm_rate(device, size: int = 2048, reps: int = 10) -> float:
    """Best float32 matrix-multiply rate (FLOP/s) of a few size x size products."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def _status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS now, VmHWM the peak since exec)."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_memory_mib(backend: str, q: int, n: int) -> float:
    """How far one training epoch lifts a fresh process's peak RSS (VmHWM) above its RSS
    with the data loaded (MiB): the memory training itself needs. (ru_maxrss would not do:
    Linux carries the parent's peak into a child across exec.)"""
    code = (
        f"import bench.bench as b; x, y = b.lab_data({q}, {n}, 'cpu'); b.one_epoch({backend!r}, x[:2], y[:2]); "
        f"rss = b._status_kib('VmRSS'); b.one_epoch({backend!r}, x, y); print(rss, b._status_kib('VmHWM'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return (int(out[1]) - int(out[0])) / 1024


def stage_times(recipe: str = "linear-gate") -> tuple[dict[str, float], dict[str, float]]:
    """Wall time of each stage of dvc.yaml (its own command line) on the default params, run
    in order in a temporary folder with tracking off; then of the stages that `recipe`'s params
    change (what `make recipe` reruns), on the same data."""
    from cnn_denoise.recipes import book

    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    # dvc.yaml's ${data.train_from}, filled in as DVC does; the speech stages (a download) are not the lab's
    text = re.sub(r"\$\{data\.train_from\}", defaults["data"]["train_from"], (ROOT / "dvc.yaml").read_text())
    stages = {k: v for k, v in yaml.safe_load(text)["stages"].items() if not k.startswith("speech_")}
    overrides = book.load(recipe, ROOT)[0].overrides
    rerun, changed = (
        [],
        set(),
    )  # the stages whose params the recipe sets, and every stage downstream of them (as DVC reruns)
    for name, stage in stages.items():
        if any(
            o.split(".")[0] in {p.split(".")[0] for p in stage.get("params", [])} for o in overrides
        ) or changed & set(stage.get("deps", [])):
            rerun.append(name)
            changed |= {
                o if isinstance(o, str) else next(iter(o))
                for key in ("outs", "metrics", "plots")
                for o in stage.get(key, [])
            }
    times, recipe_times = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, CNN_DENOISE_TRACKING="off")
        for params, names, out in (
            (defaults, list(stages), times),
            (book.set_dotted(defaults, overrides), rerun, recipe_times),
        ):
            Path(tmp, "params.yaml").write_text(yaml.safe_dump(params))
            for name in names:
                program, script, *args = shlex.split(stages[name]["cmd"])
                assert program == "python", stages[name]["cmd"]
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, str(ROOT / script), *args], cwd=tmp, env=env, check=True, capture_output=True
                )
                out[name] = time.perf_counter() - start
    return times, recipe_times


def enhance_rtf(seconds: int = 60) -> dict:
    """`cnn-denoise enhance` on a 48 kHz stereo 16-bit file of `seconds` with the lab's CNN
    (random weights: the arithmetic is what counts): wall time over audio time."""
    import numpy as np
    import soundfile as sf

    from cnn_denoise.enhance.denoiser import Denoiser
    from cnn_denoise.enhance.files import enhance_file

    denoiser = Denoiser(cnn.build(model_settings(SPEC["taps"], SPEC["features"]), seed=0), 32000, 2e-4)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.wav"
        sf.write(src, np.random.default_rng(0).standard_normal((48000 * seconds, 2)) * 0.05, 48000, subtype="PCM_16")
        start = time.perf_counter()
        enhance_file(denoiser, src, Path(tmp) / "out.wav")
        took = time.perf_counter() - start
    return {
        "audio_seconds": seconds,
        "format": "48 kHz stereo PCM_16",
        "wall_seconds": took,
        "real_time_factor": took / seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recordings", type=int, default=250, help="training recordings per epoch (the lab: 250)")
    parser.add_argument("--samples", type=int, default=32000, help="samples per recording (the lab: 32000)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per fast backend (best kept)")
    parser.add_argument("--skip-stages", action="store_true", help="do not time the pipeline's stages and the recipe")
    parser.add_argument("--skip-auto", action="store_true", help="do not sweep shapes for the auto table")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    exact_float32()  # as training: no TF32 on CUDA
    x, y = lab_data(args.recordings, args.samples, device)
    layers = zip(SPEC["taps"], SPEC["features"], SPEC["features"][1:], strict=False)
    (default,) = {choose_backend(k, f, g, device) for k, f, g in layers}  # the lab's layers share one pick
    one_epoch(default, x[:32], y[:32])  # warm-up: allocator, kernels, threads
    epoch = {}
    for backend in (PLAIN, *BACKENDS):
        reps = 1 if backend == "shift" else args.repeats
        epoch[backend] = min(one_epoch(backend, x, y) for _ in range(reps))
        print(f"{backend:>9}: {epoch[backend]:.3f} s/epoch", file=sys.stderr)
    rate = gemm_rate(device)
    flops = useful_flops(args.recordings, args.samples)
    memory = (
        {b: peak_memory_mib(b, args.recordings, args.samples) for b in (PLAIN, *BACKENDS)}
        if device.type == "cpu"
        else {}
    )
    if device.type == "cuda":
        for b in (PLAIN, *BACKENDS):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            one_epoch(b, x, y)
            memory[b] = (torch.cuda.max_memory_allocated() - base) / 2**20
    results = {
        "command": shlex.join(["python", "bench/bench.py", *(argv if argv is not None else sys.argv[1:])]),
        "commit": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "recordings": args.recordings,
        "samples": args.samples,
        "default_backend": default,
        "seconds_per_epoch": epoch,
        "speedup_default_over_conv1d": epoch["conv1d"] / epoch[default],
        "speedup_default_over_plain_conv1d": epoch[PLAIN] / epoch[default],
        "speedup_default_over_shift": epoch["shift"] / epoch[default],
        "useful_gflop_per_epoch": flops / 1e9,
        "gemm_gflops": rate / 1e9,
        "fraction_of_gemm_rate": {b: flops / t / rate for b, t in epoch.items()},
        "peak_training_memory_mib": memory,
        "one_batch_mib": 32 * args.samples * 4 / 2**20,
    }
    if not args.skip_auto:
        results["auto"] = auto_table(device)
        auto_plot(results["auto"], Path(args.out).with_name(f"auto_{device.type}.png"))
    results["enhance"] = enhance_rtf()
    print(
        f"enhance: {results['enhance']['audio_seconds']} s of {results['enhance']['format']} in "
        f"{results['enhance']['wall_seconds']:.2f} s (real-time factor {results['enhance']['real_time_factor']:.3f})",
        file=sys.stderr,
    )
    if not args.skip_stages:
        results["stage_seconds"], results["recipe_seconds"] = stage_times(RECIPE)
        results["recipe"] = RECIPE
        epochs = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["epochs"]
        results["training_arithmetic_s"] = epochs * epoch[default]  # what the train stage cannot do without
        results["pipeline_over_training"] = sum(results["stage_seconds"].values()) / results["training_arithmetic_s"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\n{results['device']}, {args.recordings} x {args.samples} samples, GEMM {rate / 1e9:.0f} GFLOP/s, "
        f"{flops / 1e9:.1f} useful GFLOP per epoch"
    )
    print(f"{'backend':>9} {'s/epoch':>9} {'vs default':>11} {'of GEMM':>8} {'peak MiB':>9}")
    for b, t in epoch.items():
        mark = " *" if b == default else ""
        print(
            f"{b:>9} {t:9.3f} {t / epoch[default]:10.2f}x {flops / t / rate:8.1%} "
            f"{memory.get(b, float('nan')):9.0f}{mark}"
        )
    print(
        f"default ({default}) is {results['speedup_default_over_plain_conv1d']:.1f}x a plain conv1d CNN, "
        f"{results['speedup_default_over_conv1d']:.1f}x the conv1d backend and "
        f"{results['speedup_default_over_shift']:.1f}x the shift register"
    )
    if "auto" in results:
        print(
            f"{'knob':>9} {'value':>14} "
            + " ".join(f"{b:>9}" for b in results["auto"][0]["seconds"])
            + "  auto  vs fastest"
        )
        for r in results["auto"]:
            print(
                f"{r['knob']:>9} {str(r[r['knob']]).replace(' ', ''):>14} "
                + " ".join(f"{t:9.3f}" for t in r["seconds"].values())
                + f"  {r['auto']:>8} {r['auto_over_fastest']:.2f}x"
            )
    if "stage_seconds" in results:
        print(
            "stages (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in results["stage_seconds"].items())
            + f"; all {sum(results['stage_seconds'].values()):.1f} = "
            f"{results['pipeline_over_training']:.1f}x the training arithmetic "
            f"({results['training_arithmetic_s']:.1f} s)"
        )
        print(
            f"recipe {results['recipe']} (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in results["recipe_seconds"].items())
            + f"; all {sum(results['recipe_seconds'].values()):.1f}"
        )


if __name__ == "__main__":
    main()
