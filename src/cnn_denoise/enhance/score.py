"""`enhance --score`: DNSMOS of a file before and after."""

from pathlib import Path

SCORED_SECONDS = 600  # --score rates at most a recording's first ten minutes (DNSMOS holds them in memory)


def score_line(src: Path, dst: Path) -> str:
    """DNSMOS before and after, for one file (its first SCORED_SECONDS, channels averaged)."""
    import soundfile as sf

    from cnn_denoise.scoring.perceptual import dnsmos

    def rate(path):
        info = sf.info(str(path))
        x, sr = sf.read(str(path), frames=min(info.frames, SCORED_SECONDS * info.samplerate), always_2d=True)
        return dnsmos(x.mean(axis=1), sr)

    before, after = rate(src), rate(dst)
    cells = "  ".join(f"{k.upper()} {before[k]:.2f} -> {after[k]:.2f}" for k in ("sig", "bak", "ovrl"))
    return f"{src.name}: DNSMOS {cells}"
