"""Load the course's dataset zip safely, validate it, and split it into train and test.

The zip holds one torch file, i.e. a pickle: it is loaded with `weights_only=True`, which
refuses anything but tensors and plain containers, so a hostile file cannot run code. It is
read in memory, so no member is ever written to disk, and members whose names would escape
their folder, or that would inflate past the limits (zip bombs), refuse the whole zip.

Accepted layouts: a list of (x, y) pairs (the course's), a pair of stacked tensors (X, Y),
or a dict {"x": X, "y": Y}; each signal [1, N] or [N], stacked ones [Q, 1, N] or [Q, N].
The result is always {"x": [Q, 1, N], "y": [Q, 1, N]} float32.
"""

import io
import pickle
import re
import zipfile
from pathlib import PurePosixPath, PureWindowsPath

import torch

from cnn_denoise.common.errors import PipelineError, first_line
from cnn_denoise.config.choices import MAX_SAMPLES

TORCH_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".tar", ".torch")
MAX_MEMBER_BYTES = 4 << 30  # refuse a member that inflates past 4 GiB
MAX_RATIO = 200  # refuse a member compressed more than 200:1
MAX_MEMBERS = 10_000
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}  # what real dataset zips use
CHUNK = 1 << 20  # bytes inflated at a time


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path) -> bytes:
    """The member's bytes, inflated as a stream that stops as soon as it produces more than the
    header declared (a forged header cannot make it allocate more), CRC checked at the end."""
    out, produced = io.BytesIO(), 0
    try:
        with zf.open(info) as member:
            while chunk := member.read(CHUNK):
                produced += len(chunk)
                if produced > info.file_size:
                    raise PipelineError(
                        f"{path}: member {info.filename!r} inflates past the {info.file_size} bytes its header "
                        "declares; refusing a possible zip bomb"
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError, NotImplementedError) as exc:
        raise PipelineError(
            f"{path}: member {info.filename!r} is corrupt ({first_line(exc, limit=None)}); fix data.url or re-download"
        ) from exc
    return out.getvalue()


def _unsafe_name(name: str) -> bool:
    posix, win = PurePosixPath(name), PureWindowsPath(name)
    return posix.is_absolute() or win.is_absolute() or bool(win.drive) or ".." in posix.parts or ".." in win.parts


def _ignored(name: str) -> bool:
    base = PurePosixPath(name).name
    return name.startswith("__MACOSX/") or base.startswith(".")


def read_torch_member(path) -> object:
    """Return the object stored in the zip's only torch file, loaded with weights_only=True."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PipelineError(
            f"{path} is not a readable zip ({exc}); fix data.url or delete it and run dvc repro again"
        ) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise PipelineError(
                f"{path} has {len(infos)} members (limit {MAX_MEMBERS}); this is not the course's dataset zip"
            )
        for info in infos:
            if _unsafe_name(info.filename):
                raise PipelineError(
                    f"{path}: member {info.filename!r} points outside its folder (zip slip); refusing this zip"
                )
            if info.flag_bits & 0x1:
                raise PipelineError(f"{path}: member {info.filename!r} is encrypted; give an unencrypted zip")
            if info.compress_type not in METHODS:
                raise PipelineError(
                    f"{path}: member {info.filename!r} uses compression method {info.compress_type}; "
                    f"only {' and '.join(METHODS.values())} are accepted: re-zip it with those"
                )
            if info.file_size > MAX_MEMBER_BYTES:
                raise PipelineError(
                    f"{path}: member {info.filename!r} inflates to {info.file_size} bytes (limit {MAX_MEMBER_BYTES}); "
                    "refusing a possible zip bomb"
                )
            if info.file_size > MAX_RATIO * max(info.compress_size, 1):
                ratio = info.file_size // max(info.compress_size, 1)
                raise PipelineError(
                    f"{path}: member {info.filename!r} is compressed {ratio}:1 (limit {MAX_RATIO}:1); refusing "
                    "a possible zip bomb"
                )
        files = [i for i in infos if not i.is_dir() and not _ignored(i.filename)]
        found = [i for i in files if PurePosixPath(i.filename).suffix.lower() in TORCH_SUFFIXES]
        if len(found) != 1:
            names = (
                ", ".join(repr(i.filename) for i in files) or "nothing"
            )  # repr: no control characters reach the terminal
            what = "no torch file" if not found else f"{len(found)} torch files"
            raise PipelineError(
                f"{path} holds {what} (members: {names}); the zip must hold exactly one {'/'.join(TORCH_SUFFIXES)} file"
            )
        data = _read_capped(zf, found[0], path)
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        culprit = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if culprit:
            raise PipelineError(
                f"{path}: {found[0].filename!r} holds objects other than tensors (GLOBAL {culprit[1]}); "
                "refused to unpickle them (weights_only=True); use a file of plain tensors"
            ) from exc
        detail = " ".join(str(exc).split("WeightsUnpickler error:")[-1].split()).split(" Check the documentation")[0]
        raise PipelineError(
            f"{path}: {found[0].filename!r} is not a readable torch file ({detail}); fix data.url"
        ) from exc
    except (RuntimeError, EOFError, ValueError) as exc:
        raise PipelineError(
            f"{path}: {found[0].filename!r} is not a readable torch file ({str(exc).splitlines()[0]}); fix data.url"
        ) from exc


def _plain(t, what: str) -> torch.Tensor:
    """t if it is what it says it is: a dense CPU tensor, not a Parameter, needing no grad,
    whose storage holds every element it shows (a stride-0 `expand` view shows many more)."""
    if type(t) is not torch.Tensor:
        raise PipelineError(f"dataset: {what} is a {type(t).__name__}, expected a plain tensor")
    if t.layout != torch.strided or t.device.type != "cpu" or t.requires_grad:
        raise PipelineError(
            f"dataset: {what} is a {t.layout} tensor on {t.device} (requires_grad={t.requires_grad}); "
            "save dense CPU tensors without grad"
        )
    if t.numel() > MAX_SAMPLES:
        raise PipelineError(
            f"dataset: {what} has {t.numel()} samples (limit {MAX_SAMPLES}); use fewer or shorter recordings"
        )
    repeated = any(
        s == 0 and n > 1 for s, n in zip(t.stride(), t.shape, strict=True)
    )  # a dim of one element, shown n times
    if t.numel() and (repeated or t.untyped_storage().nbytes() < t.numel() * t.element_size()):
        raise PipelineError(
            f"dataset: {what} shows {t.numel()} elements but its storage holds {t.untyped_storage().nbytes()} bytes "
            "(a broadcast view); save real tensors (.contiguous())"
        )
    return t


def _mono(t, what: str, stacked: bool) -> torch.Tensor:
    """A stack of recordings [Q, 1, N] or [Q, N] as [Q, 1, N] (`stacked`), or one recording
    [1, N] or [N] as [1, N]: the channel axis is added where it is missing."""
    if not isinstance(t, torch.Tensor):
        raise PipelineError(f"dataset: {what} is a {type(t).__name__}, expected a tensor")
    t = _plain(t, what)
    dims = 3 if stacked else 2
    if t.dim() == dims - 1:
        t = t.unsqueeze(-2)
    if t.dim() != dims or t.shape[-2] != 1:
        expected = "[Q, 1, N] or [Q, N]" if stacked else "[1, N] or [N]"
        raise PipelineError(f"dataset: {what} has shape {tuple(t.shape)}, expected {expected} (mono audio)")
    return t


def to_pairs(obj) -> dict:
    """Normalise any accepted layout to {"x": [Q,1,N], "y": [Q,1,N]} and validate it."""
    if isinstance(obj, dict) and {"x", "y"} <= set(obj):
        X, Y = _mono(obj["x"], "x", True), _mono(obj["y"], "y", True)
    elif (
        isinstance(obj, (list, tuple))
        and len(obj) == 2
        and all(isinstance(t, torch.Tensor) and t.dim() == 2 and t.shape[0] == 2 for t in obj)
    ):
        raise PipelineError(
            "dataset: two tensors of shape [2, N] could be (X, Y) with 2 recordings or 2 recordings of stacked "
            "(x, y) rows; "
            "save a list of (x, y) pairs or {'x': X, 'y': Y}"
        )
    elif (
        isinstance(obj, (list, tuple))
        and len(obj) == 2
        and all(isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[0] != 1 for t in obj)
    ):
        X, Y = _mono(obj[0], "X", True), _mono(obj[1], "Y", True)
    elif isinstance(obj, (list, tuple)) and obj:
        xs, ys = [], []
        for q, pair in enumerate(obj):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise PipelineError(
                    f"dataset: item {q} is not an (x, y) pair; expected a list of (noisy, clean) tensor pairs"
                )
            x, y = _mono(pair[0], f"x of pair {q}", False), _mono(pair[1], f"y of pair {q}", False)
            if x.shape != y.shape:
                raise PipelineError(
                    f"dataset: pair {q} has x {tuple(x.shape)} and y {tuple(y.shape)}; x and y must have the same shape"
                )
            if xs and x.shape != xs[0].shape:
                raise PipelineError(
                    f"dataset: pair {q} has shape {tuple(x.shape)} but pair 0 has {tuple(xs[0].shape)}; all "
                    "recordings must have one length"
                )
            for name, t in (("x", x), ("y", y)):
                if t.dtype != torch.float32:
                    raise PipelineError(
                        f"dataset: {name} of pair {q} is {t.dtype}, expected torch.float32; convert the data "
                        "with .float()"
                    )
            xs.append(x)
            ys.append(y)
            if len(xs) * x.numel() > MAX_SAMPLES:
                raise PipelineError(
                    f"dataset: more than {MAX_SAMPLES} samples by pair {q}; use fewer or shorter recordings"
                )
        X, Y = torch.stack(xs), torch.stack(ys)
    else:
        raise PipelineError(
            f"dataset: unsupported layout {type(obj).__name__}; expected a list of (x, y) pairs, (X, Y) or "
            f"{{'x': X, 'y': Y}}"
        )
    if X.shape != Y.shape:
        raise PipelineError(f"dataset: x {tuple(X.shape)} and y {tuple(Y.shape)} differ in shape; they must match")
    for name, t in (("x", X), ("y", Y)):
        if t.dtype != torch.float32:
            raise PipelineError(f"dataset: {name} is {t.dtype}, expected torch.float32; convert the data with .float()")
        bad = ~torch.isfinite(t)
        if bad.any():
            q = int(bad.flatten(1).any(1).nonzero()[0])
            raise PipelineError(
                f"dataset: {name} of pair {q} holds NaN or infinite values; clean or drop that recording"
            )
    if X.shape[0] < 1 or X.shape[-1] < 1:
        raise PipelineError(f"dataset: no samples (shape {tuple(X.shape)}); the dataset is empty")
    return {"x": X.contiguous(), "y": Y.contiguous()}


def split_pairs(pairs: dict, test_size: int, seed: int) -> tuple[dict, dict]:
    """A seeded random split: `test_size` pairs for testing, the rest for training."""
    q = pairs["x"].shape[0]
    if q < 2:
        raise PipelineError(f"the dataset has {q} pair; a train/test split needs at least 2")
    if test_size < 1 or test_size >= q:
        raise PipelineError(
            f"data.test_size is {test_size} but the dataset has {q} pairs; set it between 1 and {q - 1} in params.yaml"
        )
    order = torch.randperm(q, generator=torch.Generator().manual_seed(seed))
    test, train = order[:test_size].sort().values, order[test_size:].sort().values
    return ({k: v[train].clone() for k, v in pairs.items()}, {k: v[test].clone() for k, v in pairs.items()})


def load_split(path) -> dict:
    """A split written by the split stage: {"x": [Q,1,N], "y": [Q,1,N]}, checked as the
    dataset was (a file replaced by hand, corrupt or hostile, is one line, not a traceback)."""
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such split file; run dvc repro (the split stage writes it)") from None
    except Exception as exc:  # not a torch file, or one holding code (weights_only refuses it)
        raise PipelineError(
            f"{path} is not a split file ({first_line(exc)}); run dvc repro -f split to write it again"
        ) from None
    if not (isinstance(obj, dict) and set(obj) == {"x", "y"}):
        raise PipelineError(
            f"{path} is not a split file (expected {{'x': X, 'y': Y}}); run dvc repro -f split to write it again"
        )
    try:
        return to_pairs(obj)
    except PipelineError as exc:
        raise PipelineError(f"{path}: {exc}") from None
