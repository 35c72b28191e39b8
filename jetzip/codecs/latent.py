"""The latent codec: the AE_3D autoencoder's 3 floats per jet (id ``latent``).

Encode: source columns -> model frame (E, pt, eta, phi in GeV, :mod:`jetzip.features`) ->
normalization -> encoder network (:mod:`jetzip.engine`) -> float32 or float16 latents.
Decode runs it backwards. The mass is not among what three numbers carry (the model card's
"mass floor"): a restored mass column is not usable, and ``decompress``/``inspect`` say so.

Never silently wrong: compress decodes every jet again (from the stored latents, as the
decoder will) and stores verbatim the jets it cannot reproduce within the tolerance (default
5e-3 relative in pt, 5e-3 absolute in eta and phi) and those whose decoded values are not
finite. Decoded NaN or inf in any other jet is an error, never an output.

Chunk payload (little-endian)::

    u32 n_exact, u32 exact_nbytes
    latents            n_jets x dim of the config's dtype, C order
    zlib(u32 index x n_exact, f64 x 4 n_exact)   jets stored verbatim (source columns, file units)

Version-1.0 files (before the registry) hold the latents only; their config says
``"exact": false``.
"""
from __future__ import annotations

import math
import os
import struct
from typing import Any, Mapping

import numpy as np

from ..errors import FormatError, InputError, ModelMismatchError
from ..features import (REPRESENTATIONS, from_model_frame, outside_ranges, to_model_frame,
                        unencodable_jets, unencodable_reasons, wrap_phi)
from .base import Codec, DecodeContext, pack_verbatim, register, unpack_verbatim

LATENT_DTYPES = {"float32": "<f4", "float16": "<f2"}
DEFAULT_TOLERANCE = {"pt": 5e-3, "eta": 5e-3, "phi": 5e-3}
_EXACT = struct.Struct("<II")


def parse_tolerance(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """The latent codec's round-trip tolerance: ``"pt=5e-3,eta=5e-3,phi=5e-3"`` or one number.

    pt is relative, eta and phi absolute. Raises InputError on anything else.
    """
    if spec is None:
        return dict(DEFAULT_TOLERANCE)
    out = dict(DEFAULT_TOLERANCE)
    if isinstance(spec, bool) or not isinstance(spec, (int, float, str, Mapping)):
        raise InputError(f"--tolerance {spec!r}: expected a number or pt=..,eta=..,phi=..")
    items: list[tuple[Any, ...]]
    if isinstance(spec, (int, float)) or (isinstance(spec, str) and "=" not in spec):
        items = [(k, spec) for k in out]
    elif isinstance(spec, Mapping):
        items = [(k, v) for k, v in spec.items()]
    else:
        items = [tuple(part.split("=", 1)) for part in str(spec).split(",")]
    for item in items:
        if len(item) != 2:
            raise InputError(f"--tolerance {spec!r}: expected a number or pt=..,eta=..,phi=..")
        name, value = item
        key = str(name).strip().lower()
        if key not in out:
            raise InputError(f"--tolerance: unknown column {key!r}; use pt, eta, phi")
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"--tolerance {spec!r}: expected a number or pt=..,eta=..,phi=..") from None
    if not all(math.isfinite(v) and v > 0 for v in out.values()):
        raise InputError("--tolerance: values must be positive numbers")
    return out


class LatentCodec(Codec):
    """3 floats per jet from an AE_3D model; see the module doc.

    Args:
        model: the :class:`jetzip.model.Model` (full, for compress; decoder-only weights do
            for decompress).
        representation, units: the source table's (the latents live in the model frame).
        dtype: ``float32`` or ``float16`` latents.
        embed: whether the decoder weights go into the file (a ``DECW`` side record).
        tolerance: round-trip tolerance (see :func:`parse_tolerance`); None for version-1.0
            files, which have no verbatim jets.
        device, batch_size, threads: how the network runs (:mod:`jetzip.engine`).
    """

    codec_id = "latent"
    invalid_text = "NaN, inf, non-positive E or pt, or E < pt"

    def __init__(self, model, representation: str, units: str, dtype: str = "float32",
                 embed: bool = True, tolerance: Mapping[str, float] | None = DEFAULT_TOLERANCE,
                 device: str = "auto", batch_size: int | None = None, threads: int | None = None,
                 model_meta: Mapping[str, Any] | None = None) -> None:
        if dtype not in LATENT_DTYPES:
            raise InputError(f"unknown latent dtype {dtype!r}; use {', '.join(LATENT_DTYPES)}")
        if representation not in REPRESENTATIONS:
            raise FormatError(f"unknown representation {representation!r}")
        self.model = model
        self.representation = representation
        self.units = units
        self.dtype = dtype
        self.embed = embed
        self.tolerance = None if tolerance is None else dict(tolerance)
        self.device = device
        self.batch_size = batch_size
        self.threads = threads
        self.model_meta = dict(model_meta) if model_meta is not None else {
            "name": model.name, "arch": model.arch.to_json(), "weights_sha256": model.weights_sha256,
            "decoder_sha256": model.decoder_sha256, "embedded": bool(embed),
            "training_ranges": model.metadata.get("training_ranges")}
        self._encoder: Any = None  # engine.Encoder / Decoder, built on first use
        self._decoder: Any = None
        self.ranges = self.model_meta.get("training_ranges")
        self.outside = 0  # jets outside the training ranges, counted by encode
        self.exact = 0  # jets stored verbatim, counted by encode

    # -- configuration --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "model": self.model_meta,
                "normalization": self.model.normalization.to_json(),
                "latent": {"dim": self.model.arch.latent, "dtype": self.dtype, "byte_order": "little"},
                "representation": self.representation, "units": self.units,
                "exact": self.tolerance is not None, "tolerance": self.tolerance}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: DecodeContext | None = None,
                    **runtime: Any) -> "LatentCodec":
        """Rebuild for decoding. `context` (:class:`~jetzip.codecs.DecodeContext`):
        ``side_records`` (the embedded ``DECW``), ``model`` (a model or path given by the
        user), ``path`` (for messages), ``device``, ``batch_size``, ``threads``.

        Raises:
            FormatError: malformed config or embedded decoder.
            ModelMismatchError: the given model is not the one the file was made with, or no
                decoder is embedded and none is found.
        """
        from ..model import Model, load_model, sha256, unpack_tensors

        ctx = DecodeContext.of(context, **runtime)
        where = ctx.path
        meta, arch, norm, dtype, rep, units, tolerance = cls._parse_config(config, where)
        weights_sha = str(meta.get("weights_sha256", ""))
        side = ctx.side_records
        user_model = ctx.model
        if user_model is not None:
            if not isinstance(user_model, Model):
                user_model = load_model(user_model)
            if user_model.weights_sha256 != weights_sha and \
                    user_model.decoder_sha256 != meta.get("decoder_sha256"):
                raise ModelMismatchError(
                    f"model {user_model.name} (sha256 {user_model.weights_sha256[:12]}...) is not the one "
                    f"{where} was compressed with (sha256 {weights_sha[:12]}...)")
            model = Model(user_model.arch, user_model.weights, norm, name=user_model.name)
        elif "DECW" in side:
            payload = side["DECW"]
            if sha256(payload) != meta.get("decoder_sha256"):
                raise FormatError(f"{where}: embedded decoder does not match its SHA-256")
            weights = unpack_tensors(payload, arch.tensor_shapes("decoder"))
            model = Model(arch, weights, norm, name=str(meta.get("name")))
        else:
            from ..model import default_model_path

            default = default_model_path()
            candidate = load_model(default) if os.path.isfile(default) else None
            if candidate is None or candidate.weights_sha256 != weights_sha:
                raise ModelMismatchError(
                    f"{where} does not embed its decoder (compressed with --no-embed-model); "
                    f"pass --model with the model whose sha256 is {weights_sha}")
            model = Model(candidate.arch, candidate.weights, norm, name=candidate.name)
        return cls(model, rep, units, dtype, embed="DECW" in side, tolerance=tolerance,
                   device=ctx.device, batch_size=ctx.batch_size, threads=ctx.threads, model_meta=meta)

    @classmethod
    def verify_side_records(cls, config: Mapping[str, Any], side: Mapping[str, bytes], where: str) -> None:
        """An embedded decoder must match the SHA-256 in the config."""
        from ..model import sha256

        if "DECW" in side and sha256(side["DECW"]) != dict(config.get("model") or {}).get("decoder_sha256"):
            raise FormatError(f"{where}: embedded decoder does not match its SHA-256")

    @classmethod
    def _parse_config(cls, config: Mapping[str, Any], where: str) -> tuple:
        """(model meta, Architecture, Normalization, dtype, representation, units, tolerance)."""
        from ..features import Normalization
        from ..model import Architecture

        try:
            meta = dict(config["model"])
            arch = Architecture.from_json(meta["arch"])
            norm = Normalization.from_json(config["normalization"])
            dtype = str(config["latent"]["dtype"])
            dim = int(config["latent"]["dim"])
            rep, units = str(config["representation"]), str(config["units"])
            tolerance = config.get("tolerance") if config.get("exact", False) else None
            if tolerance is not None:
                tolerance = {str(k): float(v) for k, v in dict(tolerance).items()}
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise FormatError(f"{where}: codec configuration is missing or has malformed fields ({exc})") from None
        if dtype not in LATENT_DTYPES:
            raise FormatError(f"{where}: unsupported latent dtype {dtype!r}")
        if dim != arch.latent:
            raise FormatError(f"{where}: latent size {dim} does not match the architecture")
        if rep not in REPRESENTATIONS:
            raise FormatError(f"{where}: unknown representation {rep!r}")
        return meta, arch, norm, dtype, rep, units, tolerance

    @classmethod
    def check_config(cls, config: Mapping[str, Any], where: str) -> None:
        cls._parse_config(config, where)

    @classmethod
    def side_tags(cls, config: Mapping[str, Any]) -> set[str]:
        """``{"DECW"}`` when the decoder is embedded."""
        return {"DECW"} if bool(dict(config.get("model") or {}).get("embedded")) else set()

    @classmethod
    def payload_arrays(cls, config: Mapping[str, Any], chunks: list[Any]) -> dict[str, np.ndarray]:
        """``latents``: (n_jets, dim) float32 or float16, as stored."""
        return {"latents": latents_of(config, chunks)}

    def side_records(self) -> dict[str, bytes]:
        return {"DECW": self.model.packed("decoder")} if self.embed else {}

    def encode_report(self, n_jets: int) -> tuple[dict[str, Any], list[str]]:
        """``model``, ``model_sha256``, ``exact_jets`` (stored verbatim), ``outside_training_ranges``;
        warnings for jets outside the training ranges and jets stored verbatim."""
        n = n_jets
        outside, exact = self.outside, self.exact
        stats = {"model": self.model.name, "model_sha256": self.model.weights_sha256,
                 "exact_jets": exact, "outside_training_ranges": outside}
        messages = []
        ranges = self.ranges
        if outside and ranges:
            messages.append(f"{outside} of {n} jets ({outside / max(n, 1):.2%}) lie outside the model's training "
                            f"ranges (pt {ranges['pt'][0]:.3g}-{ranges['pt'][1]:.3g} GeV, |eta| <= "
                            f"{ranges['abs_eta'][1]:.3g}); expect larger residuals for them")
        if exact:
            messages.append(f"{exact} of {n} jets ({exact / max(n, 1):.2%}) are not reproduced by the network "
                            "within the tolerance and are stored exactly")
        return stats, messages

    def diagnostics(self) -> dict[str, np.ndarray]:
        """The latents of the last decoded chunk, shape (n, dim), float32."""
        lat = getattr(self, "last_latents", None)
        return {} if lat is None else {"latents": np.asarray(lat, np.float32)}

    @classmethod
    def mass_usable(cls, config: Mapping[str, Any]) -> bool:
        """The 3-float latent does not carry the mass: a mass restored from it (PtEtaPhiM,
        PxPyPzM tables) has relative errors of order 1."""
        return str(config.get("representation")) not in ("PtEtaPhiM", "PxPyPzM")

    @classmethod
    def describe(cls, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        from ..features import describe_normalization

        model = dict(config.get("model") or {})
        latent = dict(config.get("latent") or {})
        rows = [
            ("codec", "latent (3-float autoencoder latent per jet)"),
            ("model", f"{model.get('name')} ("
                      + ("decoder embedded" if model.get("embedded")
                         else "not embedded: needs --model, or the same default model") + ")"),
            ("model sha256", str(model.get("weights_sha256"))),
            ("latent", f"{latent.get('dim')} x {latent.get('dtype')}"),
            ("normalization", describe_normalization(config.get("normalization") or {})),
        ]
        tolerance = config.get("tolerance")
        if isinstance(tolerance, Mapping) and tolerance:
            rows.append(("tolerance", ", ".join(f"{k} {float(v):.3g}" for k, v in tolerance.items())
                         + " (jets further off are stored exactly)"))
        if not cls.mass_usable(config):
            rows.append(("restored mass", "not usable: the 3-float latent does not carry it "
                                          "(relative errors of order 1)"))
        return rows

    @classmethod
    def summary(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """``mass_usable``, ``model`` (name), ``model_sha256``, ``latent_dtype``,
        ``training_ranges`` (the model's, for the out-of-range fraction)."""
        model = dict(config.get("model") or {})
        return {"mass_usable": cls.mass_usable(config), "model": model.get("name"),
                "model_sha256": model.get("weights_sha256"),
                "latent_dtype": dict(config.get("latent") or {}).get("dtype"),
                "training_ranges": model.get("training_ranges")}

    @classmethod
    def payload_stats(cls, config: Mapping[str, Any], chunks: Any, context: DecodeContext | None = None
                      ) -> dict[str, Any]:
        """``latent_bytes``: the latents' own bytes (n_jets x dim x itemsize)."""
        n = sum(c.n_jets for c in chunks)
        latent = dict(config.get("latent") or {})
        itemsize = 2 if latent.get("dtype") == "float16" else 4
        return {"latent_bytes": n * int(latent.get("dim", 0)) * itemsize}

    # -- the network ----------------------------------------------------------------------
    def _engine(self, part: str):
        from ..engine import DEFAULT_BATCH_SIZE, Decoder, Encoder

        bs = self.batch_size or DEFAULT_BATCH_SIZE
        if part == "encoder":
            if self._encoder is None:
                self._encoder = Encoder(self.model, self.device, bs, workers=self.threads)
            return self._encoder
        if self._decoder is None:
            self._decoder = Decoder(self.model, self.device, bs, workers=self.threads)
        return self._decoder

    def prepare(self) -> None:
        """Build the network runners now (device errors surface before any output)."""
        self._engine("encoder" if "encoder.0.weight" in self.model.weights else "decoder")

    # -- encoding -------------------------------------------------------------------------
    def invalid(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
        """Jets the network cannot take: NaN or inf, E or pt <= 0, E below pt (features)."""
        frame = to_model_frame(columns, self.representation, self.units)
        bad = unencodable_jets(frame)
        return bad, (unencodable_reasons(frame[bad]) if bad.any() else {})

    def encode(self, columns: Mapping[str, np.ndarray], counts: np.ndarray | None) -> bytes:
        frame = to_model_frame(columns, self.representation, self.units)
        enc = self._engine("encoder")
        latents = np.ascontiguousarray(enc.run(enc.norm.apply(frame)), dtype=LATENT_DTYPES[self.dtype])
        if self.ranges:
            self.outside += int(outside_ranges(frame, self.ranges).sum())
        exact = np.zeros(0, np.int64)
        if self.tolerance is not None:
            back = self._decode_frame(latents)
            exact = np.flatnonzero(~self._close(back, frame))
            self.exact += len(exact)
        ex = b""
        if len(exact):
            ex = pack_verbatim(exact, np.stack([np.asarray(columns[r], np.float64)[exact]
                                                for r in REPRESENTATIONS[self.representation]], axis=1))
        if self.tolerance is None:
            return latents.tobytes()
        return _EXACT.pack(len(exact), len(ex)) + latents.tobytes() + ex

    def _close(self, back: np.ndarray, frame: np.ndarray) -> np.ndarray:
        tol = self.tolerance or DEFAULT_TOLERANCE
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            ok = np.isfinite(back).all(axis=1)
            ok &= np.abs(back[:, 1] / frame[:, 1] - 1) <= tol["pt"]
            ok &= np.abs(back[:, 2] - frame[:, 2]) <= tol["eta"]
            ok &= np.abs(wrap_phi(back[:, 3] - frame[:, 3])) <= tol["phi"]
        return ok

    def _decode_frame(self, latents: np.ndarray) -> np.ndarray:
        dec = self._engine("decoder")
        with np.errstate(over="ignore", invalid="ignore"):
            return dec.norm.invert(dec.run(np.asarray(latents, np.float32)))

    # -- decoding -------------------------------------------------------------------------
    def split(self, payload: bytes | memoryview, n: int,
              where: str = "chunk") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(latents (n, dim), verbatim jet indices, their columns (k, 4)) of one chunk."""
        return split_payload(payload, n, self.model.arch.latent, self.dtype, self.tolerance is not None, where)

    def decode(self, payload: bytes | memoryview, n: int, counts: np.ndarray | None,
               where: str = "chunk") -> dict[str, np.ndarray]:
        lat, index, vals = self.split(payload, n, where)
        self.last_latents = lat
        if n == 0:  # nothing for the network to do
            return {r: np.zeros(0) for r in REPRESENTATIONS[self.representation]}
        frame = self._decode_frame(lat)
        stored = np.zeros(n, bool)
        stored[index] = True
        bad = ~np.isfinite(frame).all(axis=1) & ~stored
        if bad.any():
            raise FormatError(f"{where}: {int(bad.sum())} jet(s) decode to NaN or inf (corrupted "
                              "latents or normalization)")
        cols = from_model_frame(np.nan_to_num(frame), self.representation, self.units, np.float64)
        for i, role in enumerate(REPRESENTATIONS[self.representation]):
            cols[role][index] = vals[:, i]
        return cols


def split_payload(payload: bytes | memoryview, n: int, dim: int, dtype: str, exact: bool,
                  where: str = "chunk") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latents (n, dim), verbatim jet indices, their columns (k, 4)) of one chunk payload."""
    buf = memoryview(payload)
    itemsize = np.dtype(LATENT_DTYPES[dtype]).itemsize
    n_lat = n * dim * itemsize
    n_exact, n_ex, pos = 0, 0, 0
    if exact:
        if len(buf) < _EXACT.size:
            raise FormatError(f"{where}: latent chunk is cut short")
        n_exact, n_ex = _EXACT.unpack_from(buf, 0)
        pos = _EXACT.size
    if pos + n_lat + n_ex != len(buf) or n_exact > n:
        raise FormatError(f"{where}: chunk sizes are inconsistent")
    lat = np.frombuffer(buf, LATENT_DTYPES[dtype], count=n * dim, offset=pos).reshape(n, dim)
    index, vals = unpack_verbatim(buf[pos + n_lat:], n_exact, n, where)
    return lat, index, vals


def latents_of(config: Mapping[str, Any], chunks: list) -> np.ndarray:
    """All latents of a latent-codec file's chunks (no model needed), shape (n_jets, dim)."""
    try:
        dtype, dim = str(config["latent"]["dtype"]), int(config["latent"]["dim"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"malformed latent codec configuration ({exc})") from None
    if dtype not in LATENT_DTYPES:
        raise FormatError(f"unsupported latent dtype {dtype!r}")
    parts = [split_payload(c.payload, c.n_jets, dim, dtype, bool(config.get("exact", False)))[0] for c in chunks]
    return np.concatenate(parts) if parts else np.zeros((0, dim), LATENT_DTYPES[dtype])


register(LatentCodec)
