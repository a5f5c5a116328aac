"""Loading the dataset zip safely and validating the pairs; the seeded split."""

import pytest
import torch
from helpers import torch_bytes, zip_of

from cnn_denoise.common.errors import PipelineError
from cnn_denoise.lab.dataset import read_torch_member, split_pairs, to_pairs


def pairs_list(q=5, n=64):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(1, n, generator=g), torch.randn(1, n, generator=g)) for _ in range(q)]


def test_reads_the_courses_layout(tmp_path):
    data = pairs_list()
    obj = read_torch_member(
        zip_of(tmp_path / "d.zip", {"folder/audio.pt": torch_bytes(data), "__MACOSX/._audio.pt": b"junk"})
    )
    out = to_pairs(obj)
    assert out["x"].shape == (5, 1, 64)
    assert torch.equal(out["x"][3], data[3][0]) and torch.equal(out["y"][4], data[4][1])


@pytest.mark.parametrize("layout", ["stacked_tuple", "dict", "flat_rows", "1d_pairs"])
def test_other_layouts(layout):
    data = pairs_list()
    X = torch.stack([x for x, _ in data])
    Y = torch.stack([y for _, y in data])
    obj = {
        "stacked_tuple": (X, Y),
        "dict": {"x": X, "y": Y},
        "flat_rows": (X.squeeze(1), Y.squeeze(1)),
        "1d_pairs": [(x[0], y[0]) for x, y in data],
    }[layout]
    out = to_pairs(obj)
    assert torch.equal(out["x"], X) and torch.equal(out["y"], Y)


@pytest.mark.parametrize(
    "members, message",
    [
        ({}, "no torch file"),
        ({"readme.txt": b"hi"}, "no torch file .*readme.txt"),
        ({"a.pt": b"1", "b.pt": b"2"}, "2 torch files"),
        ({"../evil.pt": b"x"}, "zip slip"),
        ({"/abs/evil.pt": b"x"}, "zip slip"),
        ({"data.pt": b"not a torch file"}, "not a readable torch file"),
    ],
)
def test_bad_zips(tmp_path, members, message):
    with pytest.raises(PipelineError, match=message):
        read_torch_member(zip_of(tmp_path / "d.zip", members))


def test_not_a_zip_and_truncated(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"<html>not found</html>")
    with pytest.raises(PipelineError, match="not a readable zip"):
        read_torch_member(tmp_path / "a.zip")
    good = zip_of(tmp_path / "b.zip", {"d.pt": torch_bytes(pairs_list())}).read_bytes()
    (tmp_path / "c.zip").write_bytes(good[: len(good) // 2])
    with pytest.raises(PipelineError, match="not a readable zip"):
        read_torch_member(tmp_path / "c.zip")


def test_zip_bomb_refused_before_extraction(tmp_path):
    zip_of(tmp_path / "bomb.zip", {"d.pt": b"\0" * (50 << 20)})  # 50 MiB of zeros: ~1000:1
    with pytest.raises(PipelineError, match="compressed .*:1 .*zip bomb"):
        read_torch_member(tmp_path / "bomb.zip")


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    blob = torch_bytes([Exploit(str(marker))])
    with pytest.raises(PipelineError, match="weights_only"):
        read_torch_member(zip_of(tmp_path / "d.zip", {"d.pt": blob}))
    assert not marker.exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.__setitem__(1, (d[1][0], d[1][1][:, :10])), "pair 1 has x .* and y"),
        (lambda d: d.__setitem__(2, (d[2][0][:, :10], d[2][1][:, :10])), "one length"),
        (lambda d: d.__setitem__(0, (d[0][0].double(), d[0][1].double())), "float64, expected torch.float32"),
        (lambda d: d[3][1].__setitem__((0, 5), float("nan")), "y of pair 3 holds NaN"),
        (lambda d: d[4][0].__setitem__((0, 0), float("inf")), "x of pair 4 holds NaN or infinite"),
        (lambda d: d.__setitem__(0, (d[0][0].reshape(2, 32), d[0][1].reshape(2, 32))), "mono audio"),
        (lambda d: d.__setitem__(0, (d[0][0],)), "not an \\(x, y\\) pair"),
    ],
)
def test_validation_errors(mutate, message):
    data = pairs_list()
    mutate(data)
    with pytest.raises(PipelineError, match=message):
        to_pairs(data)


def test_split_is_seeded_and_disjoint():
    data = to_pairs(pairs_list(q=20))
    train, test = split_pairs(data, 5, seed=3)
    again, _ = split_pairs(data, 5, seed=3)
    other, _ = split_pairs(data, 5, seed=4)
    assert train["x"].shape[0] == 15 and test["x"].shape[0] == 5
    assert torch.equal(train["x"], again["x"]) and not torch.equal(train["x"], other["x"])
    rows = {tuple(r.tolist()) for r in torch.cat([train["x"], test["x"]]).flatten(1)}
    assert len(rows) == 20  # every pair exactly once


@pytest.mark.parametrize("size", [0, 20, 25])
def test_split_needs_room(size):
    with pytest.raises(PipelineError, match="data.test_size"):
        split_pairs(to_pairs(pairs_list(q=20)), size, seed=0)


def test_ambiguous_two_by_n_tensors_are_refused():
    """Two [2, N] tensors: (X, Y) of 2 recordings, or 2 recordings of (x, y) rows? Not guessed."""
    a, b = torch.randn(2, 64), torch.randn(2, 64)
    with pytest.raises(PipelineError, match=r"could be \(X, Y\) with 2 recordings"):
        to_pairs([a, b])


def test_a_single_recording_cannot_be_split():
    with pytest.raises(PipelineError, match="the dataset has 1 pair; a train/test split needs at least 2"):
        split_pairs(to_pairs(pairs_list(q=1)), 1, seed=0)


def test_member_names_are_escaped(tmp_path):
    with pytest.raises(PipelineError) as err:
        read_torch_member(zip_of(tmp_path / "d.zip", {"evil\x1b[2Jname.txt": b"x"}))
    assert "\x1b" not in str(err.value) and "\\x1b" in str(err.value)


def test_only_stored_and_deflate_members(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "b.zip", "w", zipfile.ZIP_BZIP2) as zf:
        zf.writestr("d.pt", torch_bytes(pairs_list()))
    with pytest.raises(PipelineError, match="uses compression method 12; only stored and deflate are accepted"):
        read_torch_member(tmp_path / "b.zip")


def test_encrypted_member_is_refused(tmp_path):
    import struct

    path = zip_of(tmp_path / "e.zip", {"d.pt": torch_bytes(pairs_list())})
    raw = bytearray(path.read_bytes())
    central = raw.rfind(b"PK\x01\x02")
    for offset in (6, central + 8):  # general-purpose flags of the local header and the central directory
        struct.pack_into("<H", raw, offset, struct.unpack_from("<H", raw, offset)[0] | 0x1)  # bit 0: encrypted
    path.write_bytes(bytes(raw))
    with pytest.raises(PipelineError, match="'d.pt' is encrypted; give an unencrypted zip"):
        read_torch_member(tmp_path / "e.zip")


def test_a_header_that_lies_about_the_size_never_inflates_past_it(tmp_path):
    """A deflated member whose headers declare 1000 bytes but which inflates to 5 MB: the
    read stops at the declared size (the CRC then fails), it never holds the 5 MB."""
    import struct
    import zipfile

    body = torch_bytes(pairs_list()) + b"\0" * (5 << 20)
    path = zip_of(tmp_path / "lie.zip", {"d.pt": body})
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("d.pt")
    struct.pack_into("<I", raw, info.header_offset + 22, 1000)  # local header: uncompressed size
    central = raw.rfind(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, 1000)  # central directory: uncompressed size
    path.write_bytes(bytes(raw))
    with pytest.raises(PipelineError, match="'d.pt' is corrupt"):
        read_torch_member(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda x: x[:, :1].expand(1, 10**8), "a broadcast view"),
        (lambda x: x.to_sparse(), "save dense CPU tensors"),
        (lambda x: x.to("meta"), "save dense CPU tensors"),
        (lambda x: x.requires_grad_(True), "requires_grad=True"),
        (lambda x: torch.nn.Parameter(x), "is a Parameter, expected a plain tensor"),
    ],
)
def test_tensors_that_lie_are_refused_before_stacking(make, message):
    data = pairs_list()
    data[1] = (make(data[1][0].clone()), data[1][1])
    with pytest.raises(PipelineError, match=message):
        to_pairs(data)


def test_total_samples_are_bounded(monkeypatch):
    from cnn_denoise.lab import dataset

    monkeypatch.setattr(dataset, "MAX_SAMPLES", 200)  # stands for 2e8: the same check on small data
    with pytest.raises(PipelineError, match="more than 200 samples by pair 3"):
        to_pairs(pairs_list(q=5, n=64))
    with pytest.raises(PipelineError, match="has 320 samples \\(limit 200\\)"):
        to_pairs({"x": torch.zeros(5, 1, 64), "y": torch.zeros(5, 1, 64)})
