"""Learned conditional entropy models in integer-valued arithmetic (bit-identical everywhere).

A :class:`ContextModel` holds one small network per coded stream of the bounded codec (the
stream names are :data:`STREAMS`). For each symbol the network gives a distribution over
``B`` *buckets* of the physical value (log pt drop, eta, phi relative to the leading jet,
log(mass/pt) or log(E/(pt cosh eta))) plus one escape bucket, conditioned on features of
the already-decoded jet and of its event (position, jet count, previous and leading jet).
Bucket edges are in physical units, so one model serves every error bound: a chunk turns
them into thresholds on its integer symbols with ``ceil(edge / step)``. Inside a bucket the
symbol is coded uniformly; escaped symbols (outside the edges) go to a per-chunk table.

Why the probabilities are identical on every machine, thread count and device (``GUIDE.md``
section 11: a float32 network differs between CPUs and CUDA in the last bits, and an entropy
decoder that sees one probability differ decodes garbage):

- features are integers (``floor(q * (step * 64))``: one IEEE multiplication, exactly
  rounded on every platform, then floor);
- weights are integers on fixed grids, stored as integers; the matrix products run in
  float64 on integer-valued operands whose every partial sum stays below 2^53, so they are
  exact whatever the BLAS, summation order or FMA use;
- tanh and exp come from integer tables stored in the model file (no libm at coding time);
- the bucket frequencies are integers (1 .. 2^20), handed to `constriction` as exact floats.

Fixed-point layout (F features, H hidden units, B + 1 outputs)::

    z  = x . W1 + b1                 x integer, W1 on a 2^-20 grid per unit of x
    k  = clip(floor(z / 2^10), -4096, 4095)        tanh argument in 1/1024
    h  = TANH[k + 4096]              round(2^12 tanh(k / 1024))
    l  = h . W2 + b2                 W2 on a 2^-12 grid: l in 2^-24 nats
    d  = clip(floor((max(l) - l) / 2^18), 0, 1023)  in 1/64 nats
    f  = EXP[d]                      round(2^20 exp(-d / 64)), at least 1

File format: a NumPy ``.npz`` (read with ``allow_pickle=False``) with ``meta`` (JSON bytes:
format, name, streams, feature names, training record), ``tanh``, ``exp`` and per stream
``<name>/edges`` (float64), ``<name>/w1``, ``<name>/b1``, ``<name>/w2``, ``<name>/b2`` (int64).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import FormatError, InputError, ModelMismatchError

FORMAT = "jetzip-context-model"
FORMAT_VERSION = 1
# Streams of the bounded codec a model may cover, and the features of each (in this order).
STREAMS: dict[str, tuple[str, ...]] = {
    "pt_first": ("njets",),
    "pt_drop": ("position", "njets", "log_pt_prev", "log_pt_lead"),
    "eta": ("log_pt", "position", "njets"),
    "phi_rel": ("log_pt", "log_pt_lead_minus_pt", "position", "njets"),
    "m": ("log_pt", "abs_eta", "position", "njets"),
    "E": ("log_pt", "abs_eta", "position", "njets"),
}
FIXED = 64  # features of log pt and |eta| are floor(value * 64)
MAX_COUNT = 31  # position and jet count are capped here; 0 jets = a flat table (no events)
W1_SHIFT, HIDDEN_SHIFT, TANH_BITS, TANH_RANGE = 20, 10, 12, 4096
W2_SHIFT, LOGIT_SHIFT, EXP_SIZE, EXP_BITS = 12, 18, 1024, 20
BATCH = 1 << 15  # symbols per constriction call (bounds the (n, B + 1) frequency arrays)
MAX_HIDDEN, MAX_BUCKETS = 64, 256  # a model file may not ask for more (memory and time per symbol)
MAX_MODEL_BYTES = 4 << 20  # a model file, and each array in it once decompressed
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
MAX_FEATURE = float(1 << 16)  # |x| clip: keeps every partial sum exact
# |weights| below this keeps every partial sum of both products far below 2^53
MAX_W1, MAX_W2 = float(1 << 30), float(1 << 24)
LOG_UNITS_FIXED = {"GeV": 0, "MeV": 442, "TeV": -442}  # round(64 log 1000): file units -> GeV


def make_tanh_table() -> np.ndarray:
    """``round(2^12 tanh(k / 1024))`` for k in [-4096, 4096); made once, at training time."""
    k = np.arange(-TANH_RANGE, TANH_RANGE, dtype=np.float64)
    return np.rint(np.tanh(k / (1 << HIDDEN_SHIFT)) * (1 << TANH_BITS)).astype(np.int64)


def make_exp_table() -> np.ndarray:
    """``max(1, round(2^20 exp(-d / 64)))`` for d in [0, 1024); made once, at training time."""
    d = np.arange(EXP_SIZE, dtype=np.float64)
    return np.maximum(np.rint(np.exp(-d / 64.0) * (1 << EXP_BITS)), 1).astype(np.int64)


@dataclass(eq=False)
class StreamModel:
    """The network of one stream: (n, F) integer features -> (n, B + 1) integer frequencies."""

    name: str
    edges: np.ndarray  # (B + 1,) float64, increasing: bucket b is [edges[b], edges[b + 1])
    w1: np.ndarray  # (F, H) integer-valued float64
    b1: np.ndarray  # (H,)
    w2: np.ndarray  # (H, B + 1)
    b2: np.ndarray  # (B + 1,)
    _cache: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def buckets(self) -> int:
        return len(self.edges) - 1

    def check(self, where: str = "context model") -> None:
        """Shapes, limits and value ranges that keep every sum exact (see the module doc).
        Raises FormatError."""
        f = len(STREAMS[self.name])
        h = self.w1.shape[1] if self.w1.ndim == 2 else -1
        b = self.buckets

        def within(a: np.ndarray, limit: float) -> bool:  # float64 integers: no overflow in abs
            return bool(np.all(np.isfinite(a))) and bool(np.all(np.abs(a) < limit))

        ok = (self.edges.dtype == np.float64 and self.edges.ndim == 1 and 2 <= b + 1 <= MAX_BUCKETS + 1
              and within(self.edges, 1e6) and bool(np.all(np.diff(self.edges) > 0))
              and self.w1.shape == (f, h) and 1 <= h <= MAX_HIDDEN
              and self.b1.shape == (h,) and self.w2.shape == (h, b + 1) and self.b2.shape == (b + 1,)
              and within(self.w1, MAX_W1) and within(self.b1, MAX_W1 * 64)
              and within(self.w2, MAX_W2) and within(self.b2, MAX_W2 * 64))
        if not ok:
            raise FormatError(f"{where}: stream {self.name!r} has inconsistent shapes or values")

    def _scaled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The weights times powers of two (exact), so that the first layer gives the tanh
        table's index and the second layer logits in 1/64 nats directly."""
        if self._cache is None:
            s1 = 1.0 / (1 << HIDDEN_SHIFT)
            s2 = 1.0 / (1 << LOGIT_SHIFT)
            self._cache = (np.ascontiguousarray(self.w1 * s1), (self.b1 + TANH_RANGE * (1 << HIDDEN_SHIFT)) * s1,
                           np.ascontiguousarray(self.w2 * s2), self.b2 * s2)
        return self._cache

    def frequencies(self, x: np.ndarray, tanh: np.ndarray, exp: np.ndarray,
                    keep: np.ndarray | None = None) -> np.ndarray:
        """(n, F) integer-valued float64 features -> (n, B + 1) integer frequencies (float64,
        C-contiguous: `constriction` reads the buffer as rows); with `keep` (see
        :func:`merge_plan`), (n, len(keep)): each kept bucket also carries the empty buckets
        just before it.

        Every value below is an integer times a power of two and every sum stays below 2^53
        (checked on load), so float64 computes it exactly, in any order, on any machine."""
        w1, b1, w2, b2 = self._scaled()
        x = np.clip(x, -MAX_FEATURE, MAX_FEATURE)
        z = np.empty((len(x), w1.shape[1]))
        z[:] = b1
        for i in range(x.shape[1]):  # F is small: no GEMM
            z += x[:, i:i + 1] * w1[i]
        np.floor(z, out=z)
        np.clip(z, 0, 2 * TANH_RANGE - 1, out=z)  # the tanh table's index
        h = np.take(tanh, z.astype(np.intp))
        logits = h @ w2  # in 1/64 nats
        logits += b2
        np.subtract(logits.max(axis=1, keepdims=True), logits, out=logits)
        np.floor(logits, out=logits)
        np.minimum(logits, EXP_SIZE - 1, out=logits)
        f = np.take(exp, logits.astype(np.intp))
        if keep is None or len(keep) == f.shape[1]:
            return f
        merge = np.zeros((f.shape[1], len(keep)))  # bucket -> the kept bucket that carries it
        owner = np.searchsorted(keep, np.arange(f.shape[1]))
        merge[np.arange(f.shape[1]), owner] = 1.0
        return np.ascontiguousarray(f @ merge)  # exact: integer sums below 2^31

    def thresholds(self, step: float, offset: float = 0.0) -> np.ndarray | None:
        """Integer symbols where the buckets start: ``ceil((edge + offset) / step)``, (B + 1,);
        None when a step makes them too large to be symbols (|t| >= 2^52)."""
        with np.errstate(all="ignore"):
            t = np.ceil((self.edges + offset) / step)
        if not np.all(np.abs(t) < float(1 << 52)):
            return None
        return t.astype(np.int64)


@dataclass(eq=False)
class ContextModel:
    """A set of :class:`StreamModel` with the shared tables and the model card record."""

    streams: dict[str, StreamModel]
    tanh: np.ndarray
    exp: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    raw: bytes | None = field(default=None, repr=False)  # the file's bytes, when read from one

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "context"))

    def reference(self) -> dict[str, str]:
        """What a file records to find this model again: ``{"name", "sha256"}``."""
        return {"name": self.name, "sha256": self.sha256}

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps({**self.meta, "format": FORMAT, "version": FORMAT_VERSION,
                                              "streams": sorted(self.streams)}).encode(), np.uint8),
            "tanh": self.tanh.astype(np.int64), "exp": self.exp.astype(np.int64)}
        for name, s in sorted(self.streams.items()):
            arrays[f"{name}/edges"] = s.edges.astype(np.float64)
            for part in ("w1", "b1", "w2", "b2"):
                arrays[f"{name}/{part}"] = getattr(s, part).astype(np.int64)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    def save(self, path: str | os.PathLike, force: bool = False) -> None:
        """Write the bytes this model was read from (their sha256 is what files record), or new
        ones for a model made in memory."""
        from ..atomic import atomic_output

        with atomic_output(path, force) as tmp:
            Path(tmp).write_bytes(self.raw if self.raw is not None else self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "context model") -> "ContextModel":
        """Parse a model file's bytes. Raises FormatError on anything malformed, oversized or
        outside the limits that keep the arithmetic exact."""
        if len(data) > MAX_MODEL_BYTES:
            raise FormatError(f"{where}: {len(data)} bytes, more than a context model may have")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                sizes = {i.filename: i.file_size for i in zf.infolist()}
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                def get(key: str) -> np.ndarray:
                    if sizes.get(key + ".npy", MAX_MODEL_BYTES + 1) > MAX_MODEL_BYTES:
                        raise FormatError(f"{where}: array {key} is missing or too large")
                    return z[key]

                meta = json.loads(bytes(get("meta").astype(np.uint8)).decode())
                if not isinstance(meta, dict) or meta.get("format") != FORMAT or \
                        int(meta.get("version", 0)) != FORMAT_VERSION:
                    raise FormatError(f"{where}: not a jetzip context model of version {FORMAT_VERSION}")
                if not NAME_PATTERN.fullmatch(str(meta.get("name", ""))):
                    raise FormatError(f"{where}: the model's name must be 1-64 letters, digits or _.+-")
                names = meta["streams"]
                if not isinstance(names, list) or len(set(map(str, names))) != len(names):
                    raise FormatError(f"{where}: malformed stream list")
                arrays = {"tanh": _integers(get("tanh"), where), "exp": _integers(get("exp"), where)}
                streams = {}
                for name in names:
                    if name not in STREAMS:
                        raise FormatError(f"{where}: unknown stream {name!r}")
                    edges = get(f"{name}/edges")
                    if edges.dtype != np.float64:
                        raise FormatError(f"{where}: stream {name} edges are not float64")
                    w1, b1, w2, b2 = (_integers(get(f"{name}/{p}"), where) for p in ("w1", "b1", "w2", "b2"))
                    sm = StreamModel(name, np.ascontiguousarray(edges), w1, b1, w2, b2)
                    sm.check(where)
                    streams[name] = sm
        except FormatError:
            raise
        except Exception as exc:  # zip, key, JSON, dtype errors: all mean a bad file
            raise FormatError(f"{where}: not a readable context model ({type(exc).__name__})") from None
        tanh, exp = arrays["tanh"], arrays["exp"]
        if tanh.shape != (2 * TANH_RANGE,) or exp.shape != (EXP_SIZE,) \
                or not np.all((exp >= 1) & (exp <= 1 << EXP_BITS)) or not np.all(np.abs(tanh) <= 1 << TANH_BITS):
            raise FormatError(f"{where}: malformed tables")
        model = cls(streams, tanh, exp, meta, "", bytes(data))
        model.sha256 = model.content_sha256()
        return model

    def content_sha256(self) -> str:
        """The model's identity, which files record: SHA-256 of what decides the probabilities
        (streams, edges, weights, tables), not of the file's bytes (which also hold the name
        and creation time)."""
        h = hashlib.sha256(f"{FORMAT}/{FORMAT_VERSION}".encode())
        for name, sm in sorted(self.streams.items()):
            h.update(name.encode() + b"\0")
            h.update(np.ascontiguousarray(sm.edges, "<f8").tobytes())
            for a in (sm.w1, sm.b1, sm.w2, sm.b2):
                h.update(str(a.shape).encode())
                h.update(np.ascontiguousarray(a, np.float64).astype("<i8").tobytes())
        for a in (self.tanh, self.exp):
            h.update(np.ascontiguousarray(a, np.float64).astype("<i8").tobytes())
        return h.hexdigest()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ContextModel":
        p = Path(path)
        try:
            if p.is_file() and p.stat().st_size > MAX_MODEL_BYTES:
                raise FormatError(f"{p}: {p.stat().st_size} bytes, more than a context model may have")
            with open(p, "rb") as f:
                data = f.read(MAX_MODEL_BYTES + 1)
        except OSError as exc:
            raise InputError(f"cannot read context model {p}: {exc.strerror or exc}") from None
        return cls.from_bytes(data, str(p))


def _integers(a: np.ndarray, where: str) -> np.ndarray:
    """An integer array of a model file as exact float64 (|values| < 2^53). Raises FormatError."""
    if a.dtype.kind not in "iu" or a.dtype.itemsize > 8:
        raise FormatError(f"{where}: weights and tables must be stored as integers")
    if a.size and (int(a.min()) <= -(1 << 53) or int(a.max()) >= 1 << 53):
        raise FormatError(f"{where}: integers beyond 2^53")
    return np.ascontiguousarray(a, np.float64)


def default_context_model_path() -> Path:
    """The shipped model (package data), whether or not it exists."""
    return Path(__file__).resolve().parent.parent / "models" / "context_v1.jzc"


_DEFAULT: dict[str, ContextModel | None] = {}


def default_context_model() -> ContextModel | None:
    """The shipped model, loaded once per process, or None if this install has none."""
    if "m" not in _DEFAULT:
        p = default_context_model_path()
        _DEFAULT["m"] = ContextModel.load(p) if p.exists() else None
    return _DEFAULT["m"]


def context_model_option(value: "str | os.PathLike | ContextModel | None") -> ContextModel | None:
    """What ``--context-model`` asks for: ``auto`` (the shipped model when this install has
    it), ``none``, a path to a model file, or a model. Raises InputError/FormatError on a bad
    path or file."""
    if value is None or isinstance(value, ContextModel):
        return value
    text = str(value)
    if text.lower() == "auto":
        return default_context_model()
    if text.lower() == "none":
        return None
    return ContextModel.load(text)


def resolve_context_model(ref: Any, runtime: ContextModel | None = None) -> ContextModel:
    """The model a file's configuration names: `runtime` if given and matching, else the
    shipped one. Raises FormatError naming the model when neither matches its sha256."""
    try:
        name, sha = str(ref["name"]), str(ref["sha256"])
    except (KeyError, TypeError):
        raise FormatError("malformed entropy model reference in the codec configuration") from None
    for m in (runtime, default_context_model()):
        if m is not None and m.sha256 == sha:
            return m
    if runtime is not None:
        raise ModelMismatchError(f"the context model given ({runtime.name!r}, sha256 {runtime.sha256[:12]}...) is "
                                 f"not the one this file was coded with ({name!r}, sha256 {sha[:12]}...)")
    raise ModelMismatchError(f"this file was coded with the context model {name!r} (sha256 {sha[:12]}...), which "
                             "this jetzip does not have; pass that model file with --model")


# -- coding -----------------------------------------------------------------------------

def merge_plan(thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Buckets that hold at least one integer symbol at this step, and the escape bucket:
    ``(keep, remap)`` with ``remap[b]`` the coded index of bucket b (-1: empty). At coarse
    steps narrow buckets hold no symbol; their probability goes to the next bucket, whose
    first symbol's cell they overlap."""
    b_count = len(thr) - 1
    keep = np.concatenate([np.flatnonzero(np.diff(thr) > 0), [b_count]]).astype(np.int64)
    remap = np.full(b_count + 1, -1, np.int64)
    remap[keep] = np.arange(len(keep))
    return keep, remap


def buckets_of(values: np.ndarray, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket in [0, B], B = escape; offset inside the bucket; bucket width) of each symbol."""
    b_count = len(thr) - 1
    b = np.searchsorted(thr, values, side="right") - 1
    inside = (b >= 0) & (b < b_count)
    b = np.where(inside, b, b_count)
    start = thr[np.minimum(b, b_count - 1)]
    width = np.where(inside, thr[np.minimum(b + 1, b_count)] - start, 0)
    return b.astype(np.int32), np.where(inside, values - start, 0), width


def model_bits(freqs: np.ndarray, buckets: np.ndarray, widths: np.ndarray) -> float:
    """Bits a batch costs with these frequencies (bucket code + uniform offset), escapes aside;
    `buckets` index the columns of `freqs`."""
    p = freqs[np.arange(len(buckets)), buckets] / freqs.sum(axis=1)
    return float(-np.log2(p).sum() + np.log2(np.maximum(widths, 1)).sum())


FreqFn = Callable[[int, int], np.ndarray]  # (start, stop) -> (stop - start, B + 1) frequencies
