"""Checksummed record framing shared by ``.aez`` files and model files.

A file is a magic number, a format version and a sequence of records::

    magic      8 bytes   b"\\x89AEZ\\r\\n\\x1a\\n" (.aez) or b"\\x89JZM\\r\\n\\x1a\\n" (model)
    major      u16 LE    incompatible changes bump this; readers refuse a larger major
    minor      u16 LE    compatible additions (new ancillary records) bump this
    record*    tag (4 ASCII bytes) | length (u64 LE) | payload | crc32 (u32 LE)

The CRC-32 of each record covers its tag, length and payload, so a flipped bit anywhere
after the version is detected and located (which record, at which offset). A tag whose first
letter is upper-case is *critical*: a reader that does not know it must refuse the file. A
lower-case first letter marks an *ancillary* record that old readers skip safely; this is how
later minor versions add sections without breaking version-1 readers.

Every length is checked against the bytes left in the file and against a hard ceiling
before anything is allocated, so a hostile length field cannot exhaust memory.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from typing import BinaryIO, Iterator, NamedTuple

from .errors import FormatError, UnsupportedVersionError

AEZ_MAGIC = b"\x89AEZ\r\n\x1a\n"
MODEL_MAGIC = b"\x89JZM\r\n\x1a\n"
PREAMBLE = struct.Struct("<8sHH")
RECORD_HEAD = struct.Struct("<4sQ")
CRC = struct.Struct("<I")
KNOWN_MAGICS = {AEZ_MAGIC: "a .aez file", MODEL_MAGIC: "a jetzip model file"}
MAX_RECORD_BYTES = 1 << 31  # no legitimate record comes near 2 GiB


class Record(NamedTuple):
    tag: str
    payload: bytes
    offset: int  # of the record's first byte in the file
    index: int  # type: ignore[assignment]  # position among the file's records (shadows tuple.index)


def write_preamble(f: BinaryIO, magic: bytes, major: int, minor: int) -> None:
    f.write(PREAMBLE.pack(magic, major, minor))


def write_record(f: BinaryIO, tag: str, payload: bytes | bytearray | memoryview, seed: int = 0) -> int:
    """Append one record; returns the number of bytes written. `seed` starts the CRC-32
    (``.aez`` 3.x: the file identity, so that records of another file do not verify)."""
    head = RECORD_HEAD.pack(tag.encode("ascii"), len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head, seed))
    f.write(head)
    f.write(payload)
    f.write(CRC.pack(crc))
    return RECORD_HEAD.size + len(payload) + CRC.size


def read_preamble(f: BinaryIO, magic: bytes, what: str, max_major: int,
                  path: str = "") -> tuple[int, int]:
    """Check magic and version; return (major, minor)."""
    raw = f.read(PREAMBLE.size)
    name = f" {path}" if path else ""
    if len(raw) < PREAMBLE.size and raw[:8] == magic:
        raise FormatError(f"{path or 'file'}: truncated {what} ({len(raw)} bytes, shorter than its preamble)")
    if len(raw) < PREAMBLE.size or raw[:8] != magic:
        found = KNOWN_MAGICS.get(raw[:8])
        if found:
            raise FormatError(f"{path or 'file'}: expected {what} but this is {found}")
        raise FormatError(f"{path or 'file'}: not {what} (wrong magic number"
                          f"{', file too short' if len(raw) < PREAMBLE.size else ''})")
    _, major, minor = PREAMBLE.unpack(raw)
    if major > max_major:
        raise UnsupportedVersionError(
            f"{what}{name} uses format version {major}.{minor}; this jetzip reads format "
            f"{max_major}.x only - upgrade jetzip to read it")
    if major == 0:
        raise FormatError(f"{what}{name}: invalid format version {major}.{minor}")
    return major, minor


def file_size(f: BinaryIO) -> int | None:
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        try:
            pos = f.tell()
            end = f.seek(0, 2)
            f.seek(pos)
            return end
        except (OSError, io.UnsupportedOperation):
            return None


def read_record(f: BinaryIO, index: int, size: int | None, what: str, seed: int = 0) -> Record | None:
    """Read and verify the next record (its CRC-32 started at `seed`); None at a clean end
    of file."""
    offset = f.tell()
    head = f.read(RECORD_HEAD.size)
    if not head:
        return None
    if len(head) < RECORD_HEAD.size:
        raise FormatError(f"{what} is truncated: record {index} at byte {offset} is cut short")
    raw_tag, length = RECORD_HEAD.unpack(head)
    tag = raw_tag.decode("latin-1")
    if not (tag.isascii() and tag.isalnum()):
        raise FormatError(f"{what} is corrupted: record {index} at byte {offset} has an invalid tag")
    left = None if size is None else size - offset - RECORD_HEAD.size - CRC.size
    if length > MAX_RECORD_BYTES or (left is not None and length > left):
        if left is not None and left >= 0 and length <= MAX_RECORD_BYTES:
            raise FormatError(f"{what} is truncated: record {index} ({tag}) at byte {offset} "
                              f"needs {length} bytes, {max(left, 0)} remain")
        raise FormatError(f"{what} is corrupted: record {index} ({tag}) at byte {offset} "
                          f"has an impossible length {length}")
    payload = f.read(length)
    tail = f.read(CRC.size)
    if len(payload) < length or len(tail) < CRC.size:
        raise FormatError(f"{what} is truncated: record {index} ({tag}) at byte {offset} is cut short")
    if zlib.crc32(payload, zlib.crc32(head, seed)) != CRC.unpack(tail)[0]:
        raise FormatError(f"{what} is corrupted: checksum mismatch in record {index} ({tag}) "
                          f"at byte {offset}" + (" (or the record belongs to another file)" if seed else ""))
    return Record(tag, payload, offset, index)


def iter_records(f: BinaryIO, what: str, start_index: int = 0, seed: int = 0) -> Iterator[Record]:
    """Yield verified records until the end of the file."""
    size = file_size(f)
    index = start_index
    while True:
        rec = read_record(f, index, size, what, seed)
        if rec is None:
            return
        yield rec
        index += 1


def inflate_exact(blob: bytes | memoryview, size: int, message: str) -> bytes:
    """zlib-compressed bytes that must inflate to exactly `size` bytes and end there; never
    inflates more than `size` + 1 bytes, whatever the stream claims (a zlib bomb stops there).

    Raises:
        FormatError(message): the stream is damaged, shorter or longer than `size`.
    """
    d = zlib.decompressobj()
    try:
        raw = d.decompress(bytes(blob), size + 1)
    except zlib.error:
        raise FormatError(message) from None
    if len(raw) != size or not d.eof or d.unused_data:
        raise FormatError(message)
    return raw


def chunk_head(head: struct.Struct, record: bytes | memoryview, index: int, where: str) -> tuple:
    """The fields of a chunk record's fixed head (`head`, whose first field is the chunk's
    sequence number), checked to be there and to be chunk `index` (formats 1.0 to 3.0).

    Raises:
        FormatError: the record is shorter than its head, or holds another chunk's number.
    """
    if len(record) < head.size:
        raise FormatError(f"{where}: chunk record too short")
    fields = head.unpack_from(record)
    if fields[0] != index:
        raise FormatError(f"{where}: chunk number {fields[0]} found where chunk {index} belongs "
                          "(chunks reordered, duplicated or missing)")
    return fields


def is_critical(tag: str) -> bool:
    return tag[:1].isupper()
