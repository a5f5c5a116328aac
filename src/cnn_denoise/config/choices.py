"""Every choice a user can name, and the shape rules of a CNN: the one place they are written.

Torch-free, so that reading and checking params.yaml costs no torch import (fetch and split
never need torch). Each name below is defined here only; the modules that implement a
choice key their tables by these constants and `check_table` makes a name without an
implementation (or the other way round) fail at import, by name.
"""

# how a layer's output becomes the next layer's input (model.last_activation)
TANH, LINEAR = "tanh", "linear"
ACTIVATIONS = (TANH, LINEAR)

# how a MIMO filter is computed (model.backend); all give the same numbers
SHIFT, CONV1D, TOEPLITZ, FFT = "shift", "conv1d", "toeplitz", "fft"
BACKENDS = (SHIFT, CONV1D, TOEPLITZ, FFT)
AUTO = "auto"  # model.backend and train.device: chosen for the machine by a fixed rule

# what steps the weights (train.optimizer)
SGD, ADAM, LBFGS = "sgd", "adam", "lbfgs"
OPTIMIZERS = (SGD, ADAM, LBFGS)

# how the learning rate moves over training's steps (train.schedule): as given throughout (the
# course's), or down a half cosine from train.lr to 0 (CosineAnnealingLR's curve)
CONSTANT, COSINE = "constant", "cosine"
SCHEDULES = (CONSTANT, COSINE)

# what the history's per-epoch train L1 measures (train.history): the training set after the
# epoch (one more forward pass of it: the course's "train loss"), or the mean over the epoch's
# batches as they trained (free: no pass of its own; what most trainers print)
SET, BATCHES = "set", "batches"
HISTORIES = (SET, BATCHES)

# what training minimises (train.loss)
L1, SNR, SI_SDR, SI_SDR_SPECTRAL = "l1", "snr", "si_sdr", "si_sdr_spectral"
LOSSES = (L1, SNR, SI_SDR, SI_SDR_SPECTRAL)

# which network model.* describes (model.arch): the lab's CNN (model.taps, model.features), or
# the masking CNN of the speech recipe (model.masknet; masknet.py)
CNN, MASKNET = "cnn", "masknet"
ARCHS = (CNN, MASKNET)

# where the weights start (train.init)
XAVIER = "xavier"  # the course's xavier_normal_; LINEAR: the least-squares filter (warmstart.py)
FILTERBANK = "filterbank"  # masknet: analysis and synthesis as a perfect-reconstruction filter bank
INITS = (XAVIER, LINEAR, FILTERBANK)

CPU, CUDA = "cpu", "cuda"
DEVICES = (AUTO, CPU, CUDA)

# samples in a dataset's x (and in its y) over all recordings: 0.8 GB each as float32; what one
# machine trains on in hours, so a typo fails at once instead of filling memory first
MAX_SAMPLES = 200_000_000

FULL = "full"  # train.batch_size: the whole training set in one batch (what L-BFGS needs)


def check_table(table, names, what: str) -> None:
    """Fail loudly when an implementation table and the names here disagree."""
    if set(table) != set(names):
        raise RuntimeError(f"{what}: implemented {sorted(table)} but spec.py names {sorted(names)}; keep them equal")


def choose(name: str, names, what: str) -> str:
    """`name` if it is one of `names`; a ValueError naming the choices otherwise."""
    if name not in names:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(names)}")
    return name


def shape_problem(taps, features, mono: bool = False) -> str | None:
    """Why taps [K_1..K_L] and features [F_0..F_L] are not a CNN (with `mono`: one for
    mono audio, one feature in and out), or None."""
    taps, features = list(taps), list(features)
    if len(taps) < 1:
        return "taps must list at least one layer, e.g. [40, 40]"
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in taps + features):
        return f"taps and features must be integers >= 1, got taps {taps}, features {features}"
    if len(features) != len(taps) + 1:
        return f"features needs len(taps) + 1 = {len(taps) + 1} entries [F_0..F_L], got {len(features)}"
    if mono and (features[0] != 1 or features[-1] != 1):
        return f"features must start and end with 1 for mono audio, got {features}"
    return None


def linear_start_problem(taps, features, last_activation) -> str | None:
    """Why a CNN of this shape cannot start as the least-squares filter, or None if it can."""
    taps, features = list(taps), list(features)
    if len(taps) != 2 or taps[1] != 1 or len(features) != 3 or features[1] < 2 or last_activation != LINEAR:
        return (
            f"train.init linear needs model.taps [K, 1], model.features [1, G, 1] with G >= 2 and "
            f"model.last_activation linear, got taps {taps}, features {features}, last_activation {last_activation}"
        )
    return None


def receptive_field(taps) -> int:
    """How many input samples (the current one and the past) reach one output sample."""
    return sum(taps) - len(taps) + 1


# noise mixed into recorded speech (speech.kinds): the lab's 14-15.5 kHz band, white, pink (1/f),
# brown (1/f^2), mains hum (50/60 Hz and harmonics), babble (other utterances), hold music, and
# recorded (the noise WAVs of the user's speech.folder)
BAND, WHITE, PINK, BROWN, HUM, BABBLE, MUSIC, RECORDED = (
    "band",
    "white",
    "pink",
    "brown",
    "hum",
    "babble",
    "music",
    "recorded",
)
NOISE_KINDS = (BAND, WHITE, PINK, BROWN, HUM, BABBLE, MUSIC, RECORDED)
EQ_MAX = 0.45  # speech.eq's bound: below 1/2 the mixer's random filter keeps its poles inside the unit circle

# evaluate.sets: test sets scored besides the training's own
LAB, SPEECH = "lab", "speech"
EVAL_SETS = (LAB, SPEECH)
