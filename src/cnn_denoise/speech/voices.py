"""Many recorded voices from Debian's packages, so the speech denoiser hears more than one speaker:
Asterisk's prompts (Allison Smith in English and Spanish, Carlo Flora in Italian, July E. Jiménez
in Colombian Spanish, Armelle Desjardins in French) and the recordings of KDE's educational games
(KLettres' letters and syllables, KTuberling's words: one folder per language).

Each package has a rule that maps a file's path inside it to (voice id, utterance) or None (not
audio, not speech, a copied folder, a reserved voice). A voice id names one speaker or one KDE
language folder: "asterisk/allison-smith", "es-co/july-jimenez", "klettres/fr", "ktuberling/fr".
Allison Smith recorded both asterisk-core-sounds-en and -es, so both give the one voice
"asterisk/allison-smith" (utterances "en_US/digits/1", "es_MX/digits/1"): a split by voice must
not hear her on both sides. KDE's folders are per language, not per speaker (a folder may hold
several speakers, one translator may have recorded both games), so speaker_group keeps a
language's KDE voices together.

Reserved voices (Asterisk's Russian, Menardi's Italian prompts, KDE's lt, nn and uk folders) are
kept for independent checks: refused by name or never mapped, whatever the caller asks. Asterisk's
French voice (June Wallack) is the bench voice (bench/unseen.py): refused here too, so no
params.yaml can train on it.

Packages are read in memory with speech.deb's deb_files; G.722 and WAV/Ogg decode as corpus.py does,
raw GSM 6.10 (.gsm: 33-byte frames, no header) with soundfile's RAW reader. Lossy codecs overshoot
full scale: clipped to [-1, 1]. Clips keep their recorded rate; the mixer resamples.
"""

import hashlib
import io
from pathlib import PurePosixPath

import numpy as np

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.speech import corpus
from cnn_denoise.speech.deb import deb_files

SILENT_RMS = corpus.SILENT_RMS
NARROW_HZ = 4000.0  # the telephone band's edge: "narrow" speech has nothing above it
# A clip sampled above 8 kHz is narrow when its energy above NARROW_TEST_HZ is below NARROW_SHARE_DB of
# the whole: 1 kHz above the edge so that a resampler's transition band is not taken for content.
NARROW_TEST_HZ = 5000.0
NARROW_SHARE_DB = -66.0
FULL_SCALE = 0.99  # |x| at or above this counts as clipped
RESERVED_KDE_LANGUAGES = frozenset({"lt", "nn", "uk"})
RESERVED_PACKAGES = ("asterisk-core-sounds-ru", "asterisk-prompt-it-menardi")
BENCH_PACKAGES = ("asterisk-core-sounds-fr",)  # June Wallack: bench/unseen.py's voice, never trained on
# Asterisk's prompts that are tones, silence or monkeys, not speech (tt-monkeysintro, spoken, stays).
ASTERISK_NOT_SPEECH = corpus.NOT_SPEECH | {"tt-monkeys"}
# KTuberling's sr@* folders are byte-identical copies of sr/.
KTUBERLING_COPIES = frozenset({"sr@ijekavian", "sr@ijekavianlatin", "sr@latin"})

ALLISON = (
    "Asterisk's prompts recorded by Allison Smith (http://www.theivrvoice.com); financial contributions by "
    "Digium, Inc. (http://www.digium.com)"
)


def base_language(folder: str) -> str:
    """ "pt_BR" -> "pt", "sr@latin" -> "sr": the language of a KDE locale folder."""
    return folder.split("@", 1)[0].split("_", 1)[0].lower()


def asterisk_core(folder: str, voice: str, prefix: str):
    """The rule of asterisk-core-sounds-LANG-FORMAT: usr/share/asterisk/sounds/<folder>/<prompt>.<wav|g722>
    -> (voice, prefix/prompt), tones and silences left out."""
    root = f"usr/share/asterisk/sounds/{folder}/"

    def member(name: str):
        if not name.startswith(root) or not name.endswith((".wav", ".g722")):
            return None
        prompt = name[len(root) :].rsplit(".", 1)[0]
        if prompt.startswith(corpus.NOT_SPEECH_DIRS) or PurePosixPath(prompt).name in ASTERISK_NOT_SPEECH:
            return None
        return voice, f"{prefix}/{prompt}"

    return member


def asterisk_prompt(folder: str, voice: str):
    """The rule of an asterisk-prompt-* package: usr/share/asterisk/sounds/<folder>/<prompt>.gsm
    -> (voice, prompt); the links beside <folder> are links, never read."""
    root = f"usr/share/asterisk/sounds/{folder}/"

    def member(name: str):
        if not name.startswith(root) or not name.endswith(".gsm"):
            return None
        prompt = name[len(root) : -len(".gsm")]
        return None if PurePosixPath(prompt).name in ASTERISK_NOT_SPEECH else (voice, prompt)

    return member


def klettres_member(name: str):
    """usr/share/klettres/<lang>/{alpha,syllab}/<x>.ogg -> ("klettres/<lang>", "alpha/<x>")."""
    parts = PurePosixPath(name).parts
    if len(parts) != 6 or parts[:3] != ("usr", "share", "klettres") or not name.endswith(".ogg"):
        return None
    lang, kind, file = parts[3:]
    if kind not in ("alpha", "syllab") or base_language(lang) in RESERVED_KDE_LANGUAGES:
        return None
    return f"klettres/{lang}", f"{kind}/{file[: -len('.ogg')]}"


def ktuberling_member(name: str):
    """usr/share/ktuberling/sounds/<lang>/<word>.<wav|ogg|opus> -> ("ktuberling/<lang>", word)."""
    parts = PurePosixPath(name).parts
    if len(parts) != 6 or parts[:4] != ("usr", "share", "ktuberling", "sounds"):
        return None
    lang, file = parts[4:]
    stem, _, suffix = file.rpartition(".")
    if suffix not in ("wav", "ogg", "opus") or lang in KTUBERLING_COPIES:
        return None
    return None if base_language(lang) in RESERVED_KDE_LANGUAGES else (f"ktuberling/{lang}", stem)


# package -> its licence, its credit and its rule. Versions and SHA-256 are params.yaml's
# (speech.voices); the rules were written for Debian 12's (bookworm) layouts.
PACKAGES = {
    "asterisk-core-sounds-en-g722": {
        "licence": "CC-BY-SA-3.0",
        "credit": ALLISON + " (English, en_US)",
        "member": asterisk_core("en_US_f_Allison", "asterisk/allison-smith", "en_US"),
    },
    "asterisk-core-sounds-en-wav": {
        "licence": "CC-BY-SA-3.0",
        "credit": ALLISON + " (English, en_US)",
        "member": asterisk_core("en_US_f_Allison", "asterisk/allison-smith", "en_US"),
    },
    "asterisk-core-sounds-es-wav": {
        "licence": "CC-BY-SA-3.0",
        "credit": ALLISON + " (Spanish, es_MX)",
        "member": asterisk_core("es_MX_f_Allison", "asterisk/allison-smith", "es_MX"),
    },
    "asterisk-core-sounds-it-wav": {
        "licence": "CC-BY-3.0",
        "credit": "Asterisk's Italian prompts recorded by Carlo Flora (http://www.carloflora.com); translated by "
        "Silvia Petrin from Digium's English",
        "member": asterisk_core("it_IT_m_Carlo", "asterisk/carlo-flora", "it_IT"),
    },
    "asterisk-prompt-es-co": {
        "licence": "GPL-2",
        "credit": "Sonidos grabados por Avatar Ltda. (http://www.avatar.com.co/) con la voz de July E. Jiménez; "
        "Copyright (C) 2006 Avatar Ltda.",
        "member": asterisk_prompt("es", "es-co/july-jimenez"),
    },
    "asterisk-prompt-fr-armelle": {
        "licence": "BSD-style (keep the copyright notice and disclaimer; no endorsement)",
        "credit": "Voice actor: Armelle Desjardins; Copyright (C) 2006 Michel Gutierrez",
        "member": asterisk_prompt("fr", "fr-armelle/armelle-desjardins"),
    },
    "klettres-data": {
        "licence": "GPL-2+",
        "credit": "KLettres (KDE Education): Copyright 2001-2011 Anne-Marie Mahfouf, 2001 Eric Bischoff and the "
        "KDE translators who recorded each language's letters and syllables",
        "member": klettres_member,
    },
    "ktuberling-data": {
        "licence": "GPL-2+",
        "credit": "KTuberling (KDE Games): Copyright 1999-2006 Éric Bischoff, 2007-2017 Albert Astals Cid, 2000 "
        "KDE Team and the KDE translators who recorded each language's words",
        "member": ktuberling_member,
    },
}


def check_package(package: str) -> dict:
    """The package's entry; reserved and bench packages, and ones without a rule, refused."""
    if package.startswith(RESERVED_PACKAGES):
        raise PipelineError(
            f"speech.voices: {package} is reserved for independent checks; remove it (never train, tune or bench on it)"
        )
    if package.startswith(BENCH_PACKAGES):
        raise PipelineError(f"speech.voices: {package} is the bench voice (bench/unseen.py); remove it from training")
    if package not in PACKAGES:
        raise PipelineError(f"speech.voices: no rule for {package}; use one of {', '.join(PACKAGES)}")
    return PACKAGES[package]


def speaker_group(voice_id: str) -> str:
    """What a split keeps on one side: the voice itself, but KDE's voices by language across both
    games and locales ("klettres/en_GB", "ktuberling/en" -> "kde/en")."""
    family, _, rest = voice_id.partition("/")
    return f"kde/{base_language(rest)}" if family in ("klettres", "ktuberling") else voice_id


def split_voices(voice_ids, held_out_fraction: float, seed: int = 0, group=speaker_group):
    """(train, held_out): sorted voice ids, whole speaker groups on one side. round(fraction x
    groups) groups are held out, at least one when fraction > 0 and at most all but one; which ones
    depends only on the seed and the groups' names (a hash: the same whatever the order of
    voice_ids, and adding a voice moves no other)."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise PipelineError(f"the held-out fraction is {held_out_fraction}; give a share in [0, 1)")
    ids = sorted(set(voice_ids))
    groups = sorted({group(v) for v in ids})
    count = 0
    if held_out_fraction > 0 and len(groups) > 1:
        count = min(max(round(held_out_fraction * len(groups)), 1), len(groups) - 1)
    rank = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}\0{g}".encode()).hexdigest())
    held = set(rank[:count])
    return [v for v in ids if group(v) not in held], [v for v in ids if group(v) in held]


def decode(name: str, blob: bytes) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], rate) of one member, by its suffix."""
    if name.endswith(".g722"):
        audio, rate = corpus._decode_g722(blob, name)
    elif name.endswith(".gsm"):
        import soundfile as sf

        if len(blob) % 33:
            raise PipelineError(f"{name}: {len(blob)} bytes, not whole 33-byte GSM 6.10 frames; download it again")
        try:
            audio, rate = sf.read(
                io.BytesIO(blob), format="RAW", subtype="GSM610", samplerate=8000, channels=1, dtype="float32"
            )
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise PipelineError(f"{name}: not decodable GSM 6.10 ({exc}); download the package again") from None
    else:
        audio, rate = corpus.read_audio(blob, name)
    return np.clip(corpus.as_float(audio), -1.0, 1.0).astype(np.float32), int(rate)


def high_share_db(audio, rate: int, edge_hz: float = NARROW_HZ) -> float:
    """dB of the energy above edge_hz over the whole (Welch's periodogram, DC left out)."""
    from scipy.signal import welch

    freqs, power = welch(corpus.as_float(audio), fs=rate, nperseg=min(1024, len(audio)))
    total = power[1:].sum()
    if total <= 0:
        return -np.inf
    return float(10 * np.log10(max(power[freqs > edge_hz].sum(), 1e-30) / total))


def band_of(audio, rate: int) -> str:
    """ "narrow" for speech with nothing above 4 kHz (8 kHz recordings, or wider files made from
    them), "wide" otherwise."""
    if rate <= 2 * NARROW_HZ:
        return "narrow"
    return "narrow" if high_share_db(audio, rate, NARROW_TEST_HZ) < NARROW_SHARE_DB else "wide"


def trim(audio: np.ndarray, rate: int, below_db: float, margin_s: float = 0.05) -> np.ndarray:
    """audio less its leading and trailing 10 ms frames quieter than below_db under the loudest
    frame, margin_s kept on each side (KLettres' Danish letters are 5-7 s files of 0.4 s speech)."""
    hop = max(rate // 100, 1)
    frames = len(audio) // hop
    if frames < 2:
        return audio
    level = np.sqrt(np.mean(audio[: frames * hop].astype(np.float64).reshape(frames, hop) ** 2, axis=1))
    loud = np.flatnonzero(level >= level.max() * 10 ** (below_db / 20))
    margin = int(margin_s * rate)
    return audio[max(loud[0] * hop - margin, 0) : min((loud[-1] + 1) * hop + margin, len(audio))]


def clipped_share(audio: np.ndarray) -> float:
    return float(np.mean(np.abs(audio) >= FULL_SCALE)) if len(audio) else 0.0


def voices_from_deb(path, package: str, min_seconds: float, max_clipped=0.01, trim_db=None, voices=None) -> dict:
    """{voice id: {utterance: {"rate": Hz, "audio": float32 [n]}}} of the package at `path`.
    Utterances shorter than min_seconds (after trimming), silent, or clipped (more than
    max_clipped of their samples at full scale; None: keep all) are left out, and so are
    byte-identical copies within a voice (the first name in sorted order stays). trim_db: trim
    leading and trailing frames quieter than this under the loudest (dB; None: as recorded).
    voices: only these voice ids (None: all)."""
    rule = check_package(package)["member"]
    wanted = None if voices is None else set(voices)

    def keep(name):
        got = rule(name)
        return got is not None and (wanted is None or got[0] in wanted)

    out, seen = {}, set()
    for name, blob in sorted(deb_files(path, keep).items()):
        voice, utterance = rule(name)
        digest = (voice, hashlib.sha256(blob).digest())
        if digest in seen:
            continue  # the same recording under a second name
        seen.add(digest)
        audio, rate = decode(f"{PurePosixPath(path).name}:{name}", blob)
        if trim_db is not None:
            audio = trim(audio, rate, trim_db)
        if max_clipped is not None and clipped_share(audio) > max_clipped:
            continue
        if len(audio) < min_seconds * rate or np.sqrt(np.mean(audio.astype(np.float64) ** 2)) < SILENT_RMS:
            continue
        out.setdefault(voice, {}).setdefault(utterance, {"rate": rate, "audio": audio})  # .wav and .g722: one
    return out


def seconds(clips: dict) -> float:
    return sum(len(c["audio"]) / c["rate"] for c in clips.values())


def corpus_speech(debs, min_seconds: float, trim_db=None) -> tuple[dict, dict]:
    """(clips, summary) of the packages debs [(path, package)]: clips {"voice:utterance": {"rate",
    "audio": int16 tensor [n], "voice"}} for the corpus (int16 halves what the 44.1 kHz KDE clips
    weigh; the mixer reads it as corpus.as_float does), summary {voice: {packages, utterances,
    minutes, rates, narrow, group}} for the record and the split."""
    import torch

    clips, summary = {}, {}
    for path, package in debs:
        found = voices_from_deb(path, package, min_seconds, trim_db=trim_db)
        if not found:
            raise PipelineError(
                f"{path} holds no utterances of {package}'s voices of at least {min_seconds} s; check its entry in "
                "speech.voices (a package of that name and layout), or lower speech.min_seconds"
            )
        for voice, utterances in found.items():
            about = summary.setdefault(
                voice, {"packages": [], "utterances": 0, "seconds": 0.0, "narrow": 0, "rates": [], "group": ""}
            )
            about["packages"].append(package)
            about["group"] = speaker_group(voice)
            for utterance, clip in utterances.items():
                audio, rate = clip["audio"], clip["rate"]
                pcm = np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16)
                clips[f"{voice}:{utterance}"] = {"rate": rate, "audio": torch.from_numpy(pcm), "voice": voice}
                about["utterances"] += 1
                about["seconds"] += len(audio) / rate
                about["narrow"] += band_of(audio, rate) == "narrow"
                about["rates"] = sorted({*about["rates"], rate})
    for about in summary.values():
        about["minutes"] = round(about.pop("seconds") / 60, 2)
    return clips, summary


def attribution(entries, music: str) -> str:
    """ATTRIBUTION.md of a corpus: each package [(file name, package, sha256)] with its licence and
    credit, and the music's line (speech.corpus's)."""
    lines = [
        "# Attribution\n",
        "The recordings in this folder come from Debian's packages, unchanged but for decoding; the data",
        "sets made from them (data/speech/) are mixes of them with noise, i.e. adaptations. The packages'",
        "own copyright files are beside this one (copyright-<package>).\n",
        "Voices:\n",
    ]
    for name, package, sha in entries:
        entry = PACKAGES[package]
        lines.append(f"- {name} (sha256 {sha.lower()}): {entry['credit']}. License: {entry['licence']}.")
    lines.append(f"\nMusic: {music}. {corpus.MUSIC_CREDIT}")
    return "\n".join(lines) + "\n"
