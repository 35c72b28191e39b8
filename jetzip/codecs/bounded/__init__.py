"""The error-bounded codec: every decoded value within a guaranteed maximum error.

Bounds (``--error-bound``): relative for pt and for E or the mass, absolute for eta and phi,
on the columns the source stores: (E, pt, eta, phi) tables bound E, (pt, eta, phi, mass)
tables such as NanoAOD bound the mass. Cartesian tables, (px, py, pz, E) and (px, py, pz, m):
|dpx|, |dpy| <= b pt, |dpz| <= b |p| and E or the mass relative, pt and |p| those of the
original four-vector (a component near zero gets no impossible relative bound); they are coded
in (pt, eta, phi) with tighter bounds (:func:`.params.polar_bounds`), every jet checked against
the Cartesian bound, and restored in their own columns. A table of jet constituents (particles:
``kind="constituents"``) codes each particle's eta and phi relative to its jet's first particle,
in contexts of the particle's pt. ``nanoaod`` is the precision CMS NanoAOD stores
(cms-sw ``PhysicsTools/NanoAOD`` ``common_cff.py`` P4Vars: pt and mass with 10 mantissa bits,
relative 2^-11; eta and phi with 12 bits, whose rounding error is 2^-13 below |x| = 2, 2^-12 in
[2, 4) and 2^-11 beyond: the preset takes 2^-12, NanoAOD's largest error below |x| = 4).

The modules, in the order a chunk goes through them:

- :mod:`.params`: bounds, quantization steps (a pure function of the bounds), context grids;
- :mod:`.quantize`: jets to integer symbols and back (the same function on both sides), the
  encoder's check of every jet against its bounds (a jet that misses is stored verbatim);
- :mod:`.streams`: the stream plan (pt of the first jet and pt drops, eta in pt classes, phi of
  the first jet and relative to it, mass classes, the 4th column in (pt, |eta|) contexts), the
  per-chunk tables, the choice of the learned entropy model per stream, and the coder that walks
  the plan both ways (compiled loops in :mod:`.kernels` and :mod:`jetzip.entropy.kernels`);
- :mod:`.spec`: the payload of every version, byte by byte, and what a decoder refuses;
- :mod:`.legacy`: the decoder of versions 1 and 2;
- :mod:`.events`: event structure and the learned model's features (numpy reference).

Everything the decoder needs is in the chunk and the file's configuration: chunks decode
independently, in any order or in parallel, and a chunk is checked against the configuration
before its values are used.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any, Mapping

import numpy as np

from ...entropy import context as ctxm
from ...entropy.context import ContextModel
from ...errors import FormatError, InputError
from ..base import Codec, DecodeContext, register, unpack_verbatim
from .events import Features
from .legacy import MAX_LEARNED_ROUNDS, LegacyDecoder
from .params import (CARTESIAN, FOURTH, KIND_TEXT, KINDS, LOG_UNITS, RELATIVE, ROLES, parse_error_bound,
                     polar_bounds, steps, steps_for)
from .quantize import KIND_E, KIND_M, Symbols, check_decoded, quantize, reconstruct
from .spec import VERSION, VERSION_LEARNED, VERSION_TABLES, refuse_unless

__all__ = ["BoundedCodec", "Features", "LOG_UNITS", "MAX_LEARNED_ROUNDS", "parse_error_bound", "steps_for"]


class BoundedCodec(Codec):
    """Error-bounded, entropy-coded jets (id ``bounded``); see the module doc.

    Args:
        bounds: per-role bounds as :func:`parse_error_bound` returns.
        representation: the source table's representation (``EPtEtaPhi``, ``PtEtaPhiM``,
            ``PxPyPzE`` or ``PxPyPzM``).
        units: the source's energy units (only used to place the pt context bins in GeV).
        context_model: the learned entropy model (None: each chunk's own tables only).
        version: the payload version (an encoder writes :data:`.spec.VERSION`; a codec built
            from a file's configuration decodes that file's version).
        kind: ``"jets"`` (events of jets) or ``"constituents"`` (jets of particles: the caller's
            counts are particles per jet); stored in the configuration when not jets.

    Raises:
        InputError: a representation the codec cannot bound, an unknown kind, or constituents
            with the learned model (trained on jets).
    """

    codec_id = "bounded"
    parallel = True
    invalid_text = "NaN or inf"

    def __init__(self, bounds: Mapping[str, float], representation: str, units: str = "GeV",
                 context_model: ContextModel | None = None, version: int = VERSION, kind: str = "jets") -> None:
        if representation not in ROLES:
            raise InputError(f"the error-bounded codec cannot store {representation} tables")
        if kind not in KINDS:
            raise InputError(f"unknown kind of table {kind!r}: use one of {', '.join(KINDS)}")
        if kind != "jets" and context_model is not None:
            raise InputError("the learned entropy model is trained on jets: code constituents with each chunk's "
                             "own tables (context model none)")
        self.representation = representation
        self.roles = ROLES[representation]
        self.fourth = FOURTH[representation]
        self.kind = KIND_E if self.fourth == "E" else KIND_M
        self.table_kind = kind
        self.bounds = {r: float(bounds[r]) for r in self.roles}
        self.units = units
        self.context_model = context_model
        self.version = version
        self.context_model_file: str | None = None  # a model not shipped: where worker processes load it
        polar = polar_bounds(self.bounds, representation)
        polar.setdefault(self.fourth, polar["pt"])  # PtEtaPhi: its masses are all zero (no 4th symbols)
        self.steps = steps(polar, self.fourth)
        self._coder: Any = None
        self._legacy: LegacyDecoder | None = None

    def threaded(self) -> bool:
        """Payload version 3 codes in numba loops compiled without the GIL (``nogil``): chunks
        code on threads. Versions 1 and 2 decode in numpy steps: worker processes."""
        return self.version >= VERSION

    def grid_steps(self) -> dict[str, float | None]:
        """(pt, eta, phi, E or mass) -> the quantization step every payload of this configuration
        uses; None for eta and phi in versions 1 and 2, whose steps depended on each chunk's
        largest value."""
        return {r: (s if RELATIVE[r] or self.version >= VERSION else None)
                for r, s in zip(("pt", "eta", "phi", self.fourth), self.steps)
                if r != self.fourth or len(self.roles) == 4}

    @classmethod
    def bound_errors(cls, config: Mapping[str, Any], original: Mapping[str, np.ndarray],
                     decoded: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """role -> per-jet error in the units of the configuration's bound for that role (a jet
        is within its bound where error <= bound): relative for pt, E and the mass (a zero must
        come back as a zero of the same sign, else inf), absolute for eta and phi; for Cartesian
        tables |dpx| / pt, |dpy| / pt, |dpz| / |p| of the original four-vector. NaN or inf decoded
        values are inf. ``evaluate`` reports these."""
        roles = ROLES.get(str(config.get("representation")), ())
        o = {r: np.asarray(original[r], np.float64) for r in roles}
        d = {r: np.asarray(decoded[r], np.float64) for r in roles}
        out = {}
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if "px" in o:
                pt = np.hypot(o["px"], o["py"])
                scale = {"px": pt, "py": pt, "pz": np.hypot(pt, o["pz"])}
            for r in roles:
                err = np.abs(d[r] - o[r])
                if r in ("px", "py", "pz"):
                    err = np.where(err == 0, 0.0, err / scale[r])
                elif RELATIVE[r]:
                    zero = o[r] == 0
                    err = np.where(zero, np.where((d[r] == 0) & (np.signbit(d[r]) == np.signbit(o[r])), 0.0, np.inf),
                                   err / np.abs(o[r]))
                out[r] = np.where(np.isfinite(d[r]), err, np.inf)
        return out

    def get_config(self) -> dict[str, Any]:
        config = {"id": self.codec_id, "version": self.version, "representation": self.representation,
                  "units": self.units, "bounds": dict(self.bounds),
                  "bound_kinds": {r: KIND_TEXT[r] for r in self.bounds}}
        if self.table_kind != "jets":
            config["kind"] = self.table_kind
        if self.context_model is not None:
            config["entropy_model"] = self.context_model.reference()
        return config

    def task_config(self) -> dict[str, Any]:
        """The configuration a worker process rebuilds this codec from (with a model's path)."""
        config = self.get_config()
        if self.context_model_file:
            config["context_model_file"] = self.context_model_file
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: DecodeContext | None = None,
                    **runtime: Any) -> "BoundedCodec":
        """`context` (:class:`~jetzip.codecs.DecodeContext`): ``model``, the entropy model (a
        :class:`ContextModel` or a path to one) for files coded with a model that is not the
        shipped one; ``check_only``; ``task``.

        Raises:
            FormatError: a malformed configuration, a version this jetzip does not know, or a
                model the file names that is not at hand.
        """
        ctx = DecodeContext.of(context, **runtime)
        try:
            version = int(config.get("version", VERSION_TABLES))
            if version not in (VERSION_TABLES, VERSION_LEARNED, VERSION):
                raise FormatError(f"bounded codec version {config.get('version')} is not supported; "
                                  "upgrade jetzip")
            bounds = {str(k): float(v) for k, v in dict(config["bounds"]).items()}
            rep = str(config["representation"])
            units = str(config.get("units", "GeV"))
            kind = str(config.get("kind", "jets"))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"malformed bounded codec configuration ({exc})") from None
        if rep not in ROLES or set(bounds) != set(ROLES[rep]) or \
                not all(math.isfinite(b) and 0 < b <= 1 for b in bounds.values()):
            raise FormatError("malformed bounded codec configuration (representation or bounds)")
        if kind not in KINDS or (version < VERSION and (kind != "jets" or rep in CARTESIAN)) or \
                (kind != "jets" and config.get("entropy_model") is not None):
            raise FormatError(f"malformed bounded codec configuration (kind {kind!r} of a {rep} table, version "
                              f"{version})")
        learned = version == VERSION_LEARNED or (version == VERSION and config.get("entropy_model") is not None)
        model = None
        path = None
        if learned:
            ref = config.get("entropy_model")
            if not isinstance(ref, Mapping) or not re.fullmatch(r"[0-9a-f]{64}", str(ref.get("sha256"))) \
                    or not ctxm.NAME_PATTERN.fullmatch(str(ref.get("name"))):
                raise FormatError("malformed entropy model reference in the codec configuration")
        if learned and not ctx.check_only:  # opening a file: the model is needed to decode
            # a model not shipped: given at run time (``--model``), or, in a worker process
            # only, the file its parent names (never a path from a file's header)
            hint = config.get("context_model_file") if ctx.task else None
            given = ctx.model or hint
            if isinstance(given, (str, os.PathLike)):
                path = str(given)
                try:
                    given = ContextModel.load(given)
                except FormatError:  # an autoencoder model file, say: not for this codec
                    given, path = None, None
            model = ctxm.resolve_context_model(config.get("entropy_model"),
                                               given if isinstance(given, ContextModel) else None)
        codec = cls(bounds, rep, units, model, version, kind)
        codec.context_model_file = path
        return codec

    @classmethod
    def check_config(cls, config: Mapping[str, Any], where: str) -> None:
        """The configuration is usable (the learned model is looked up only to decode, where
        ``--model`` can supply it)."""
        cls.from_config(config, DecodeContext(path=where, check_only=True))

    # -- checks ---------------------------------------------------------------------------
    def invalid(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
        """Jets no bound can cover: NaN or inf in any column (as in the latent codec)."""
        bad = np.zeros(len(columns[self.roles[0]]), bool)
        for v in columns.values():
            v = np.asarray(v)
            if v.dtype.kind not in "iub":  # float32 as it is: NaN and inf are those of float64
                bad |= ~np.isfinite(v if v.dtype.kind == "f" else np.asarray(v, np.float64))
        return bad, ({"with NaN or inf": int(bad.sum())} if bad.any() else {})

    # -- encoding -------------------------------------------------------------------------
    def coder(self) -> Any:
        """The version 3 coder of this configuration (built once; imports the compiled loops)."""
        if self._coder is None:
            from .streams import Coder

            self._coder = Coder(self.get_config(), self.steps, self.fourth, self.units, self.context_model,
                                self.table_kind, self.representation in CARTESIAN)
        return self._coder

    def prepare(self) -> None:
        """Compile the coding loops now (or load them from numba's cache, next to the package):
        call it in the parent process before worker processes code chunks, so that they find
        them compiled. The first use after an install compiles them once (tens of seconds)."""
        if self.version < VERSION:
            return
        for dtype in (np.float32, np.float64):
            cols = {r: np.array([30.0, 20.0, 0.0], dtype) for r in self.roles}
            cols[self.roles[0]][2] = -1.0 if self.representation not in CARTESIAN else 0.0  # a verbatim jet:
            cols[self.roles[1]][2] = 0.0  # pt < 0, or px = py = 0
            counts = np.array([2, 1], np.uint32)
            self.decode(self.encode(cols, counts), 3, counts)

    def quantize(self, columns: Mapping[str, np.ndarray]) -> tuple[Symbols, tuple[float, float, float, float],
                                                                 np.ndarray, tuple[np.ndarray, ...]]:
        """(integer symbols, steps, usable mask, the four columns as float64) of one chunk; jets
        not usable (pt <= 0, ...) get placeholder symbols. Used by ``encode`` and by training."""
        sym, usable, originals = quantize(columns, self.fourth, self.steps)
        return sym, self.steps, usable, originals

    def encode(self, columns: Mapping[str, np.ndarray], counts: np.ndarray | None) -> bytes:
        """One chunk of jets (file units, roles of the representation) -> payload bytes (version 3).

        Every jet is decoded as the decoder will; a jet that misses a bound (as float32, and as
        float64 for a column the input held as float64) is stored verbatim.
        """
        if self.version != VERSION:
            raise ValueError(f"this codec writes bounded payload version {VERSION} only")
        roles = self.roles
        n = len(columns[roles[0]])
        if counts is not None and int(np.sum(counts, dtype=np.int64)) != n:
            raise ValueError("event counts do not add up to the jets given")
        cols = tuple(np.asarray(columns[r]) for r in roles)
        bounds = tuple(self.bounds[r] for r in roles)
        if len(cols) == 3:  # PtEtaPhi: coded with masses of exact zeros (decoded, then left out)
            cols, bounds = cols + (np.zeros(n, cols[0].dtype),), bounds + (self.bounds["pt"],)
        wide = tuple(c.dtype == np.float64 for c in cols)
        return self.coder().encode(cols, counts, bounds, wide)

    # -- decoding -------------------------------------------------------------------------
    def decode(self, payload: bytes | memoryview, n: int, counts: np.ndarray | None,
               where: str = "chunk", account: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Payload -> columns (float64, file units, roles of the representation).

        `account`, if given, collects the bytes each column's streams take.

        Raises:
            FormatError: the payload is malformed, truncated, inconsistent with `n`, or holds
                what no encoder of this configuration writes (:mod:`.spec`), naming the field.
        """
        if counts is not None and int(np.sum(counts, dtype=np.int64)) != n:
            raise FormatError(f"{where}: event counts do not add up to the chunk's {n} jets")
        roles = self.roles
        if self.version >= VERSION:
            return dict(zip(roles, self.coder().decode(payload, n, counts, where, account)))
        if self._legacy is None:
            self._legacy = LegacyDecoder(self.bounds, self.fourth, self.kind, self.units, self.context_model)
        sym, steps_used, ex, n_exact = self._legacy.decode(payload, n, counts, where, account)
        dec = reconstruct(self.kind, steps_used, sym)
        out = {"pt": dec["pt"], "eta": dec["eta"], "phi": dec["phi"], self.fourth: dec["fourth"]}
        index, vals = unpack_verbatim(ex, n_exact, n, where)
        if n_exact:
            refuse_unless(bool(np.all(np.diff(index) > 0)), where, "verbatim jets out of order")
            refuse_unless(bool(np.isfinite(vals).all()), where, "a verbatim jet holds NaN or inf")
        coded = np.ones(n, bool)
        coded[index] = False
        check_decoded(self.kind, out, self.fourth, sym.m_class, coded, where)
        for i, role in enumerate(roles):
            out[role][index] = vals[:, i]
        return out

    @classmethod
    def stream_sizes(cls, config: Mapping[str, Any], chunk: Any, context: DecodeContext | None = None,
                     **runtime: Any) -> dict[str, int]:
        """Bytes of one chunk's payload per column (entropy-coded part, raw bits, tables;
        the rest of the payload under ``"head"``), for ``inspect``; decodes and checks the chunk
        as :meth:`decode` does."""
        account: dict[str, float] = {}
        ctx = DecodeContext.of(context, **runtime)
        codec = cls.from_config(config, ctx)
        codec.decode(chunk.payload, chunk.n_jets, chunk.counts, where=f"{ctx.path}: chunk {chunk.index}",
                     account=account)
        out = {k: int(round(v)) for k, v in account.items()}
        if "fourth" in out:
            out[codec.fourth] = out.get(codec.fourth, 0) + out.pop("fourth")
        out["head"] = max(0, len(chunk.payload) - sum(out.values()))
        return out

    @classmethod
    def describe(cls, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        kinds = dict(config.get("bound_kinds") or {})
        bounds = ", ".join(f"{k} {float(v):.3g}" + (f" ({kinds[k]})" if k in kinds else "")
                           for k, v in dict(config.get("bounds") or {}).items())
        rows = [("codec", "bounded (every value within its bound)"), ("bounds", bounds or "-")]
        model = config.get("entropy_model")
        if isinstance(model, Mapping):
            rows.append(("entropy model", f"{model.get('name')} (learned; sha256 {str(model.get('sha256'))[:12]}...)"))
        return rows

    @classmethod
    def guaranteed_bounds(cls, config: Mapping[str, Any]) -> dict[str, float] | None:
        return {str(k): float(v) for k, v in dict(config.get("bounds") or {}).items()}

    @classmethod
    def summary(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """``mass_usable`` (True), ``bounds``, ``entropy_model`` (its reference, or None: the
        chunks' own tables only)."""
        return {"mass_usable": True, "bounds": cls.guaranteed_bounds(config),
                "entropy_model": config.get("entropy_model")}

    @classmethod
    def payload_stats(cls, config: Mapping[str, Any], chunks: Any, context: DecodeContext | None = None
                      ) -> dict[str, Any]:
        """``stream_bytes``: bytes per column stream over `chunks` (see :meth:`stream_sizes`).
        Every chunk is decoded and checked as :meth:`decode` does (``inspect`` verifies what
        ``decompress`` would)."""
        streams: dict[str, int] = {}
        for chunk in chunks:
            for k, v in cls.stream_sizes(config, chunk, context).items():
                streams[k] = streams.get(k, 0) + v
        return {"stream_bytes": streams} if streams else {}


register(BoundedCodec)
