"""The speech model shipped with the project, so `enhance` works on a fresh machine with no
training and no registry: its weights (shipped/speech.pt, git-tracked) and its card
(shipped/speech.json: what made it, on what data, how it scores on voices it never heard).

    python -m cnn_denoise.models.shipped MODEL --recipe speech --scores bench/shipped.json \
        --trained "4,020 s on this 2-core machine (CPU)"     # copies MODEL in and writes the card

`make recipe NAME=speech` trains it again (models:/cnn-denoise@speech); this command ships it.
`--register` puts the shipped model in this clone's registry instead (a run and a version
aliased @shipped, its card in the description), so the MLflow UI shows it beside trained ones:

    python -m cnn_denoise.models.shipped --register
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cnn_denoise.common.atomic import atomic_path, write_text
from cnn_denoise.common.errors import PipelineError, run_stage

FOLDER = Path(__file__).parent / "shipped"
WEIGHTS = FOLDER / "speech.pt"
CARD = FOLDER / "speech.json"


def available() -> bool:
    return WEIGHTS.is_file() and CARD.is_file()


def card() -> dict:
    """The shipped model's card ({} when none is shipped)."""
    return json.loads(CARD.read_text()) if CARD.is_file() else {}


def latency_ms(model, rate: int) -> float:
    """The model's algorithmic delay: how late its output is behind its input, in ms."""
    return 1000.0 * getattr(model, "latency", 0) / rate


def describe(checkpoint: str, **facts) -> dict:
    """A card for a checkpoint: its network, size and latency, what it heard, and `facts`."""
    import os

    from cnn_denoise.models import checkpoint as ckpt

    model, audio = ckpt.load_checkpoint(checkpoint)
    rate = int(audio.get("sample_rate", 16000))
    return {
        "network": model.spec() if hasattr(model, "spec") else {"taps": model.taps, "features": model.features},
        "weights": sum(p.numel() for p in model.parameters()),
        "bytes": os.path.getsize(checkpoint),
        "sample_rate_hz": rate,
        "latency_ms": round(latency_ms(model, rate), 3),
        "trained_on": audio.get("trained_on", {}),
        "own_test_si_sdr_db": audio.get("test_si_sdr_db"),
        "own_test_noisy_si_sdr_db": audio.get("noisy_si_sdr_db"),
        **facts,
    }


def lines(c: dict) -> list[str]:
    """The card as `cnn-denoise info` prints it."""
    size = f"{c.get('weights', 0):,} weights, {c.get('bytes', 0) / 1e6:.1f} MB"
    out = [
        f"shipped      {c.get('recipe', '?')} recipe at commit {c.get('commit', '?')}, trained {c.get('trained', '?')}",
        f"size         {size}; algorithmic latency {c.get('latency_ms', 0):g} ms",
    ]
    about = c.get("trained_on") or {}
    if about.get("speech"):
        out.append(f"data         {about['speech']}")
    out += [f"held out     {line}" for line in c.get("headline", [])]
    return out


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def ship(model: str, recipe: str, trained: str, scores: str | None = None, commit: str | None = None) -> dict:
    """Copy the checkpoint at `model` (a path or an MLflow URI) into shipped/ and write its card."""
    with tempfile.TemporaryDirectory() as tmp:
        path = model
        if model.startswith(("runs:/", "models:/")):
            from cnn_denoise import tracking

            path = tracking.checkpoint_path(model, tmp)
        headline = []
        if scores:
            try:
                headline = json.loads(Path(scores).read_text()).get("headline", [])
            except (OSError, ValueError) as exc:
                raise PipelineError(
                    f"{scores}: not a bench JSON ({exc}); give the file bench/unseen.py wrote"
                ) from None
        c = describe(
            path,
            recipe=recipe,
            commit=commit or _commit(),
            source=model,
            trained=trained,
            scores=scores,
            headline=headline,
        )
        FOLDER.mkdir(exist_ok=True)
        with atomic_path(WEIGHTS) as tmp_weights:
            shutil.copyfile(path, tmp_weights)
    write_text(CARD, json.dumps(c, indent=1) + "\n")
    return c


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnn_denoise.models.shipped", description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", nargs="?", help="the checkpoint to ship: a path, runs:/<id> or models:/cnn-denoise@speech"
    )
    parser.add_argument(
        "--register", action="store_true", help="log the shipped model to the MLflow store as version @shipped"
    )
    parser.add_argument("--recipe", default="speech", help="the recipe that trained it")
    parser.add_argument("--trained", help="how long, on what machine (CPU or GPU)")
    parser.add_argument("--commit", help="the commit that trained it (default: HEAD)")
    parser.add_argument("--scores", help="bench/unseen.py's JSON of this model beside the peers, on voices never heard")
    args = parser.parse_args(argv)
    if args.register:
        if not available():
            raise PipelineError(f"no shipped model in {FOLDER}; ship one first (see --help)")
        from cnn_denoise import tracking
        from cnn_denoise.tracking.store import mode

        if mode() == "off":
            raise PipelineError("CNN_DENOISE_TRACKING=off: nothing is logged; unset it to register the shipped model")
        version = tracking.log_shipped(WEIGHTS, card())
        print(f"registered the shipped model as {tracking.REGISTERED_MODEL} version {version} (@shipped) in "
              f"{tracking.shown_uri()}", file=sys.stderr)  # fmt: skip
        return 0
    if not args.model or not args.trained:
        parser.error("give the MODEL to ship and --trained (how long, on what machine), or --register")
    c = ship(args.model, args.recipe, args.trained, args.scores, args.commit)
    print("\n".join(lines(c)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_stage(main)
