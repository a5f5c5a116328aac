"""A Debian package's files, read in memory: its `ar` archive, then the data.tar inside.

A .deb from a folder or a URL is a file nobody here wrote, so everything it declares is
checked before it is believed: an ar member's size is a whole number inside the file (a
negative one once walked the parser backwards forever); a member of data.tar the caller does
not want is passed over without being kept, but xz must still inflate it to reach the next
header (it has no index to skip by), so what every member declares counts towards
MAX_INFLATED_BYTES, which bounds the time. (tarfile's stream mode, `r|xz`, is no help: it
passes over a member in 10 KiB reads, each copying what is left of an inflated buffer, so a
member of zeros costs time quadratic in its size; the seekable mode inflates in bounded
pieces.) A member it wants is read only
when its declared size fits MAX_FILE_BYTES and, with those kept before it, MAX_TOTAL_BYTES,
which bounds the memory (members each under the first limit once summed to gigabytes).
"""

import io
import lzma
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from cnn_denoise.common.errors import PipelineError

DEB_MAGIC = b"!<arch>\n"
AR_HEADER = 60  # bytes of each ar member's header
MAX_DEB_BYTES = 512 << 20  # refuse a package larger than this
MAX_FILE_BYTES = 64 << 20  # refuse a member of data.tar larger than this (the prompts are KiB, the tracks MiB)
MAX_TOTAL_BYTES = 256 << 20  # refuse a package whose wanted members together pass this (all held in memory)
MAX_INFLATED_BYTES = 2 << 30  # refuse a data.tar that inflates past this, wanted or not (time to read it)
MAX_FILES = 20_000
_DIGITS = re.compile(rb"[0-9]+")


def ar_members(blob: bytes, what) -> dict[str, bytes]:
    """The members of an `ar` archive (a .deb), by name."""
    if not blob.startswith(DEB_MAGIC):
        raise PipelineError(f"{what} is not a Debian package (no ar header); delete it and download it again")
    out, pos = {}, len(DEB_MAGIC)
    while pos < len(blob):
        header = blob[pos : pos + AR_HEADER]
        field = header[48:58].strip()
        if len(header) < AR_HEADER or header[58:60] != b"`\n" or not _DIGITS.fullmatch(field):
            raise PipelineError(f"{what}: a corrupt ar header at byte {pos}; delete it and download it again")
        name, size = header[:16].decode("ascii", "replace").strip().rstrip("/"), int(field)
        start = pos + AR_HEADER
        if start + size > len(blob):
            raise PipelineError(f"{what} is truncated (member {name!r}); delete it and download it again")
        out[name] = blob[start : start + size]
        pos = start + size + (size & 1)  # members are padded to an even offset
    return out


def _safe(name: str) -> bool:
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and "\\" not in name


def deb_files(path, keep) -> dict[str, bytes]:
    """{path inside the package: bytes} of the regular files of the .deb at `path` whose
    (normalised, "usr/...") path `keep` accepts, read in memory."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such package; run dvc repro (the speech_fetch stage fetches it)") from None
    if size > MAX_DEB_BYTES:
        raise PipelineError(f"{path} is {size} bytes (limit {MAX_DEB_BYTES}); this is not one of the speech packages")
    members = ar_members(path.read_bytes(), path)
    data = [n for n in members if n.startswith("data.tar")]
    if len(data) != 1:
        raise PipelineError(f"{path} holds no data.tar (members: {sorted(members)}); delete it and download it again")
    out, total, inflated = {}, 0, 0
    try:
        with tarfile.open(fileobj=io.BytesIO(members.pop(data[0])), mode="r:*") as tar:
            for count, info in enumerate(tar):
                if count > MAX_FILES:
                    raise PipelineError(f"{path} holds more than {MAX_FILES} files; not one of the speech packages")
                name = info.name.removeprefix("./")
                if not _safe(info.name):
                    raise PipelineError(
                        f"{path}: member {info.name!r} points outside its folder; refusing this package"
                    )
                inflated += info.size
                if inflated > MAX_INFLATED_BYTES:
                    raise PipelineError(
                        f"{path}: its data.tar inflates past {MAX_INFLATED_BYTES} bytes (at member {name!r}); "
                        "not one of the speech packages: delete it and download it again"
                    )
                if not info.isfile() or not keep(name):
                    continue  # folders, links and files we do not use are passed over, never kept
                if info.size > MAX_FILE_BYTES:
                    raise PipelineError(f"{path}: member {name!r} is {info.size} bytes (limit {MAX_FILE_BYTES})")
                total += info.size
                if total > MAX_TOTAL_BYTES:
                    raise PipelineError(
                        f"{path}: the files used from it pass {MAX_TOTAL_BYTES} bytes together (at member {name!r}); "
                        "not one of the speech packages: delete it and download it again"
                    )
                out[name] = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise PipelineError(f"{path}: corrupt {data[0]} ({exc}); delete it and download it again") from None
    return out
