"""Tell checkpoint formats apart by their first bytes, and say what a file looks like when it is none of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from yolostream.errors import CheckpointError

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end record
# torch.save's pre-1.6 format is a bare pickle that opens with this magic number (a protocol-2 long).
LEGACY_TORCH_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
HEAD_BYTES = 64

Kind = Literal["zip", "safetensors", "legacy_torch", "unknown"]


def read_head(path: str | os.PathLike, n: int = HEAD_BYTES) -> tuple[Path, bytes]:
    """The first `n` bytes of a checkpoint file; CheckpointError for a missing path, a folder or an empty file."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint file")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, not a checkpoint file")
    try:
        with p.open("rb") as f:
            head = f.read(n)
    except OSError as e:
        raise CheckpointError(f"{p}: cannot be read ({e})") from e
    if not head:
        raise CheckpointError(f"{p}: is empty (0 bytes), not a checkpoint")
    return p, head


def is_safetensors_head(head: bytes) -> bool:
    """A safetensors file opens with its header's length (8 bytes, little-endian) and then the JSON '{'."""
    return len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 1 << 32


def kind_of(head: bytes) -> Kind:
    """Which reader the bytes call for."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if is_safetensors_head(head):
        return "safetensors"
    if head[:1] == b"\x80" and LEGACY_TORCH_MAGIC in head[:20]:
        return "legacy_torch"
    return "unknown"


def looks_like_pt2(names: list[str]) -> bool:
    """Whether a zip's member names are those of a torch.export / AOTInductor `.pt2` package."""
    return any(n.endswith("/archive_format") or n == "archive_format" or "/aotinductor/" in n for n in names)


def describe(head: bytes) -> str:
    """A few words on what a non-checkpoint file seems to be, from its first bytes."""
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "a PNG image"
    if head.startswith(ZIP_MAGIC):
        return "a zip archive"
    if kind_of(head) == "legacy_torch":
        return "a legacy (pre-zip) torch.save file"
    if head[:1] == b"\x80":
        return "a bare pickle, not a torch.save zip archive"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip file"
    if head.startswith(b"\x7fELF"):
        return "an executable"
    if head.lstrip().startswith((b"<", b"{", b"[")):
        return "a text (markup or JSON) file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a character cut in two by the end of `head`
            return f"an unknown binary file (starts with {head[:8].hex(' ')})"
    return f"a text file (starts with {head[:24].decode('utf-8', 'replace')!r})"
