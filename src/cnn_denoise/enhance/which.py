"""Which model `enhance` takes when none is named, and what a checkpoint says it heard."""

from pathlib import Path


def default_model() -> str:
    """models:/cnn-denoise@speech or @best when the project's store holds one (a model you
    trained), else the speech model shipped with the project (models/shipped.py), else the
    pipeline's models/model.pt. A store that does not exist yet is not created to find out."""
    from cnn_denoise import tracking
    from cnn_denoise.models import shipped
    from cnn_denoise.tracking.registry import ENHANCE_ALIASES

    fallback = str(shipped.WEIGHTS) if shipped.available() else "models/model.pt"
    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return fallback
    found = tracking.registered_alias(ENHANCE_ALIASES)
    return f"models:/{tracking.REGISTERED_MODEL}@{found}" if found else fallback


def heard(audio: dict) -> str:
    """What a checkpoint says its model was trained on, in a few words."""
    about = audio.get("trained_on") or {}
    if not about:
        return "an unrecorded dataset (an older checkpoint)"
    kinds = ", ".join(about.get("kinds", [])) or "?"
    snr = about.get("snr_db")
    band = about.get("band_hz")
    speed = about.get("speed") or [1.0, 1.0]
    formant = about.get("formant") or [1.0, 1.0]
    weights = {k: w for k, w in (about.get("kind_weights") or {}).items() if w != 1}  # the rest drawn x1
    return (
        f"{about.get('speech', '?')} with {kinds} noise"
        + (f" at {snr[0]:g} to {snr[1]:g} dB SNR" if snr else "")
        + (f" in {band[0]:g}-{band[1]:g} Hz" if band else "")
        + (f", played at {speed[0]:g} to {speed[1]:g} x speed" if speed != [1.0, 1.0] else "")
        + (f", formants moved {formant[0]:g} to {formant[1]:g} x" if formant != [1.0, 1.0] else "")
        + (f", through random filters (eq {about['eq']:g})" if about.get("eq") else "")
        + (", drawn " + ", ".join(f"{k} x{w:g}" for k, w in weights.items()) + " as often" if weights else "")
    )


def verdict(model: str, audio: dict) -> str | None:
    """One line when the model makes its own test set worse than the noisy input: what it was
    trained on, and where a better one comes from."""
    cnn, noisy = audio.get("test_si_sdr_db"), audio.get("noisy_si_sdr_db")
    if cnn is None or noisy is None or cnn >= noisy:
        return None
    return (
        f"note: {model} was trained on {heard(audio)} and lowers SI-SDR on its own test set ({cnn:.1f} dB vs "
        f"{noisy:.1f} dB noisy); `make recipe NAME=speech` trains one for recorded speech"
    )
