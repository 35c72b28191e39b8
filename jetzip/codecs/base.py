"""The codec interface and registry of the ``.aez`` container.

A codec turns one chunk of jets into bytes and back, in the spirit of numcodecs: a small
object with :meth:`Codec.encode` / :meth:`Codec.decode`, a JSON-serialisable
:meth:`Codec.get_config` holding every parameter needed to decode (with an ``"id"``), and
:meth:`Codec.from_config`. The ``.aez`` header stores the config; :func:`get_codec` is the
one way from a stored config back to a codec. Two classes share an id only if each decodes
the other's output.

The jets a codec sees are the source table's own columns (roles of the table's
representation, e.g. ``pt, eta, phi, m`` for NanoAOD, in the file's units), one chunk of
whole events at a time, with the per-event jet counts (None for flat tables).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

import numpy as np

import zlib

from ..errors import FormatError

_REGISTRY: dict[str, type["Codec"]] = {}


class UnknownCodecError(FormatError):
    """A file names a codec this jetzip does not know (written by a newer version?)."""


class Codec(ABC):
    """One way of storing a chunk of jets."""

    codec_id: ClassVar[str]

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable parameters, with ``"id": codec_id``: all a decoder needs."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: Mapping[str, Any], **runtime: Any) -> "Codec":
        """Rebuild from :meth:`get_config` output. `runtime` carries what is not stored in the
        config (a device, thread count, side records such as an embedded decoder).

        Raises:
            FormatError: the config is malformed.
        """

    @abstractmethod
    def invalid(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
        """(mask of the jets this codec refuses, their counts by reason such as
        ``"with NaN or inf"``); compress fails on them or, with drop_invalid, leaves them out."""

    @abstractmethod
    def encode(self, columns: Mapping[str, np.ndarray], counts: np.ndarray | None) -> bytes:
        """One chunk: columns (role -> 1-D array over jets) and per-event counts -> bytes."""

    @abstractmethod
    def decode(self, payload: bytes | memoryview, n: int, counts: np.ndarray | None,
               where: str = "chunk") -> dict[str, np.ndarray]:
        """Bytes of one chunk of `n` jets -> columns (role -> float array).

        Raises:
            FormatError: the payload is malformed or inconsistent.
        """

    @classmethod
    def check_config(cls, config: Mapping[str, Any], where: str) -> None:
        """Validate a stored config cheaply (no model loading, no devices); the container
        calls it when a file is opened, so a hostile header is refused before any data is read.

        Raises:
            FormatError: malformed or out-of-range parameters.
        """
        cls.from_config(config, path=where)

    @classmethod
    def verify_side_records(cls, config: Mapping[str, Any], side: Mapping[str, bytes], where: str) -> None:
        """Check the side records against the config (hashes) without building the codec.

        Raises:
            FormatError: a side record does not match.
        """
        return None  # codecs without side records have nothing to check

    def side_records(self) -> dict[str, bytes]:
        """Records written once after the header (tag -> payload), e.g. an embedded decoder."""
        return {}

    def describe(self) -> str:
        """A short human description for ``inspect``."""
        return self.codec_id


def register(cls: type[Codec]) -> type[Codec]:
    """Add a codec class to the registry under its ``codec_id``."""
    _REGISTRY[cls.codec_id] = cls
    return cls


def codec_class(codec_id: str) -> type[Codec]:
    """The class registered under `codec_id`.

    Raises:
        UnknownCodecError: no codec has that id.
    """
    _load_builtins()
    try:
        return _REGISTRY[codec_id]
    except KeyError:
        raise UnknownCodecError(f"unknown codec {codec_id!r} (known: {', '.join(sorted(_REGISTRY))}); "
                                "the file may come from a newer jetzip") from None


def get_codec(config: Mapping[str, Any], **runtime: Any) -> Codec:
    """The codec a stored config describes (see :meth:`Codec.from_config` for `runtime`)."""
    if not isinstance(config, Mapping) or not isinstance(config.get("id"), str):
        raise FormatError("codec configuration has no id")
    return codec_class(config["id"]).from_config(config, **runtime)


def _load_builtins() -> None:
    from . import bounded, latent  # noqa: F401  (each registers itself on import)


def pack_verbatim(index: np.ndarray, values: np.ndarray) -> bytes:
    """Jets stored exactly: zlib(u32 index x k, f64 x 4k), as both codecs' payloads hold them."""
    if len(index) == 0:
        return b""
    return zlib.compress(index.astype("<u4").tobytes() + np.asarray(values, "<f8").tobytes(), 6)


def unpack_verbatim(blob: bytes | memoryview, k: int, n: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices (k,), values (k, 4)) of :func:`pack_verbatim` output for a chunk of `n` jets.

    Raises:
        FormatError: a corrupted block, or an index beyond the chunk.
    """
    if k == 0:
        return np.zeros(0, np.int64), np.zeros((0, 4))
    d = zlib.decompressobj()
    try:
        raw = d.decompress(bytes(blob), 36 * k + 1)
    except zlib.error:
        raise FormatError(f"{where}: verbatim jets are corrupted") from None
    if len(raw) != 36 * k or not d.eof:
        raise FormatError(f"{where}: verbatim jets are corrupted")
    index = np.frombuffer(raw, "<u4", k).astype(np.int64)
    values = np.frombuffer(raw, "<f8", 4 * k, 4 * k).reshape(k, 4)
    if index.max() >= n:
        raise FormatError(f"{where}: verbatim jet index out of range")
    return index, values
