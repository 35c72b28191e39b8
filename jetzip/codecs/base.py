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

import dataclasses
import functools
import json
import zlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np

from ..container import inflate_exact
from ..errors import FormatError

_REGISTRY: dict[str, type["Codec"]] = {}


class UnknownCodecError(FormatError):
    """A file names a codec this jetzip does not know (written by a newer version?)."""


@dataclasses.dataclass(frozen=True)
class DecodeContext:
    """What rebuilding a codec from its stored config may need beyond the config itself.

    Nothing here is ever read from a file's header: it comes from the command line, the
    container (side records) or the parent process.

    Attributes:
        side_records: tag -> payload of the codec's side records (the latent codec's
            embedded decoder ``DECW``), as the container read them.
        path: the file, for messages.
        model: a model the user gave (``--model``): a latent :class:`~jetzip.model.Model` or
            model file, or the bounded codec's entropy model (``.jzc`` path or object).
        device, batch_size, threads: where and how the latent codec's network runs.
        check_only: validate the config only (no model loading, no devices), as the
            container does when a file is opened.
        task: rebuilt inside a worker process from :meth:`Codec.task_config`, which may name
            files the parent process chose (never paths from a file's header).
    """

    side_records: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    path: str = "file"
    model: Any = None
    device: str = "auto"
    batch_size: int | None = None
    threads: int | None = None
    check_only: bool = False
    task: bool = False

    @classmethod
    def of(cls, context: "DecodeContext | None" = None, **runtime: Any) -> "DecodeContext":
        """`context`, or one built from keyword arguments (``side_records=...``, ``path=...``,
        ``model=...``, ``context_model=...`` as an alias of ``model``, ...); None values are
        left at their defaults."""
        if context is not None and not runtime:
            return context
        base = dataclasses.asdict(context) if context is not None else {}
        if runtime.get("context_model") is not None and runtime.get("model") is None:
            runtime["model"] = runtime["context_model"]
        runtime.pop("context_model", None)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(runtime) - fields
        if unknown:
            raise TypeError(f"unknown decode option(s): {', '.join(sorted(unknown))}")
        base.update({k: v for k, v in runtime.items() if v is not None})
        if base.get("side_records") is None:
            base["side_records"] = {}
        return cls(**base)


class Codec(ABC):
    """One way of storing a chunk of jets.

    Besides encoding and decoding, a codec owns the facts about itself that the commands
    report or act on, so that nothing outside :mod:`jetzip.codecs` branches on a codec id:
    whether chunks are coded in worker processes (:attr:`parallel`), whether the mass it
    restores is usable (:meth:`mass_usable`), how ``inspect`` describes it
    (:meth:`describe`), what ``compress``, ``inspect`` and ``evaluate`` report about it
    (:meth:`summary`, :meth:`payload_stats`), and what a worker process needs to rebuild it
    (:meth:`task_config`). Codecs are stateless between chunks: encoding or decoding a
    chunk never depends on an earlier one.
    """

    codec_id: ClassVar[str]
    #: Chunks are independent and their coding holds the GIL (many small numpy steps): code
    #: them in worker processes. False: code them here (the latent codec's network already
    #: uses every core).
    parallel: ClassVar[bool] = False
    #: What :meth:`invalid` refuses, for messages (``"NaN or inf"``).
    invalid_text: ClassVar[str] = "NaN or inf"

    def threaded(self) -> bool:
        """Whether this codec's chunks (of a :attr:`parallel` codec) code in compiled loops that
        release the GIL, so that threads of this process run them side by side: no worker
        processes, no copies of the columns between processes. False here."""
        return False

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable parameters, with ``"id": codec_id``: all a decoder needs."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: Mapping[str, Any], context: DecodeContext | None = None,
                    **runtime: Any) -> "Codec":
        """Rebuild from :meth:`get_config` output. `context` (or the same as keyword
        arguments, see :meth:`DecodeContext.of`) carries what is not stored in the config.

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

    def roundtrip(self, columns: Mapping[str, np.ndarray],
                  counts: np.ndarray | None) -> tuple[bytes, dict[str, np.ndarray]]:
        """(payload, decoded columns) of one chunk held in memory: what a file would store and
        what a reader would get back, for measurements (``jetzip evaluate --baselines``) that
        have no file. Files are decoded by :meth:`jetzip.aez.AezFile.decoded`."""
        payload = self.encode(columns, counts)
        n = len(next(iter(columns.values()))) if columns else 0
        return payload, self.decode(payload, n, counts)

    @classmethod
    def check_config(cls, config: Mapping[str, Any], where: str) -> None:
        """Validate a stored config cheaply (no model loading, no devices); the container
        calls it when a file is opened, so a hostile header is refused before any data is read.

        Raises:
            FormatError: malformed or out-of-range parameters.
        """
        cls.from_config(config, DecodeContext(path=where, check_only=True))

    @classmethod
    def verify_side_records(cls, config: Mapping[str, Any], side: Mapping[str, bytes], where: str) -> None:
        """Check the side records against the config (hashes) without building the codec.

        Raises:
            FormatError: a side record does not match.
        """
        return None  # codecs without side records have nothing to check

    @classmethod
    def side_tags(cls, config: Mapping[str, Any]) -> set[str]:
        """The side records a file with this config must hold (no more, no fewer)."""
        return set()

    @classmethod
    def payload_arrays(cls, config: Mapping[str, Any], chunks: list[Any]) -> dict[str, np.ndarray]:
        """Arrays read straight from the stored payloads without decoding (``read_aez``)."""
        return {}

    def side_records(self) -> dict[str, bytes]:
        """Records written once after the header (tag -> payload), e.g. an embedded decoder."""
        return {}

    def task_config(self) -> dict[str, Any]:
        """What a worker process rebuilds this codec from (``from_config(..., task=True)``):
        the stored config, plus what the parent chose at run time (a model file's path)."""
        return self.get_config()

    def encode_report(self, n_jets: int) -> tuple[dict[str, Any], list[str]]:
        """After a file of `n_jets` jets was encoded: (statistics for compress's report,
        warnings of one line each). The default has neither."""
        return {}, []

    def diagnostics(self) -> dict[str, np.ndarray]:
        """Arrays of the last :meth:`decode` that reports may show (the latent codec's
        latents, shape (n, dim)); empty for codecs that have none."""
        return {}

    # -- facts read from a stored config (no codec is built) -------------------------------
    @classmethod
    def mass_usable(cls, config: Mapping[str, Any]) -> bool:
        """Whether the restored mass (or E) of a file with this config is usable."""
        return True

    @classmethod
    def describe(cls, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(label, text) rows that ``inspect`` shows for this config."""
        return [("codec", str(config.get("id")))]

    @classmethod
    def summary(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Facts that reports carry as JSON: always ``mass_usable``; codecs add their own
        (``bounds`` for a bounded codec, ``model`` and ``latent_dtype`` for the latent one)."""
        return {"mass_usable": cls.mass_usable(config)}

    @classmethod
    def guaranteed_bounds(cls, config: Mapping[str, Any]) -> dict[str, float] | None:
        """role -> guaranteed maximum error (relative for pt, E, m; absolute for eta, phi),
        or None for a codec that guarantees none."""
        return None

    @classmethod
    def bound_errors(cls, config: Mapping[str, Any], original: Mapping[str, np.ndarray],
                     decoded: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """role -> per-jet error in the units of :meth:`guaranteed_bounds` (a jet is within its
        bound where error <= bound), for a codec that guarantees bounds; empty otherwise."""
        return {}

    @classmethod
    def payload_stats(cls, config: Mapping[str, Any], chunks: Iterable[Any],
                      context: DecodeContext | None = None) -> dict[str, Any]:
        """What ``inspect`` reports about the payloads of `chunks` (container chunks with
        ``payload``, ``n_jets``, ``counts``, ``index``) beyond their total size; e.g. bytes
        per column stream. The default reports nothing."""
        for _ in chunks:
            pass
        return {}


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


def get_codec(config: Mapping[str, Any], context: DecodeContext | None = None, **runtime: Any) -> Codec:
    """The codec a stored config describes (see :class:`DecodeContext` for what `context`, or
    the same as keyword arguments, may carry)."""
    if not isinstance(config, Mapping) or not isinstance(config.get("id"), str):
        raise FormatError("codec configuration has no id")
    return codec_class(config["id"]).from_config(config, DecodeContext.of(context, **runtime))


@functools.lru_cache(maxsize=8)
def _task_codec(config_json: str) -> Codec:
    """A worker process's codec for a task config (built once per process and config)."""
    return get_codec(json.loads(config_json), DecodeContext(task=True))


def encode_task(config: Mapping[str, Any], columns: Mapping[str, np.ndarray], counts: np.ndarray | None) -> bytes:
    """One chunk encoded in a worker process (see ``pipeline.ordered_process_map``)."""
    return _task_codec(json.dumps(config, sort_keys=True)).encode(columns, counts)


def decode_task(config: Mapping[str, Any], payload: bytes, n: int, counts: np.ndarray | None,
                where: str) -> dict[str, np.ndarray]:
    """One chunk decoded in a worker process."""
    return _task_codec(json.dumps(config, sort_keys=True)).decode(payload, n, counts, where)


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
    raw = inflate_exact(blob, 36 * k, f"{where}: verbatim jets are corrupted")
    index = np.frombuffer(raw, "<u4", k).astype(np.int64)
    values = np.frombuffer(raw, "<f8", 4 * k, 4 * k).reshape(k, 4)
    if index.max() >= n:
        raise FormatError(f"{where}: verbatim jet index out of range")
    return index, values
