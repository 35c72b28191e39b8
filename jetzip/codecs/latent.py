"""The latent codec: the AE_3D autoencoder's 3 numbers per jet (id ``latent``).

Encode: source columns -> model frame (E, pt, eta, phi in GeV, :mod:`jetzip.features`) ->
normalization -> encoder network (:mod:`jetzip.engine`) -> latents. Decode runs it backwards. The
mass is not among what three numbers carry (the model card's "mass floor"): a restored mass
column is not usable, and ``decompress``/``inspect`` say so.

Two payload versions (``version`` in the codec config; the registry id stays ``latent``):

- **version 1** (``dtype`` ``float32`` or ``float16``): the latents literally, 3 x 4 or 3 x 2
  bytes per jet. ``--latent-dtype float32`` still writes exactly this.
- **version 2** (``dtype`` ``quantized``): the latents refined, quantized and entropy-coded,
  about 4.5 B per jet instead of 12 (see :func:`quantize_latents` and :func:`encode_latents`):

  1. *refine*: the encoder is not the exact inverse of the decoder; one Gauss-Newton step on the
     decoder moves each jet's latent to where the decoded jet is closest to the original, in
     the weighted squared error the model was trained with (E 2e-3, pt 1e-3 relative; eta
     1.5e-3, phi 1.2e-3 absolute: the training's loss weights, kept in the config). It lowers the
     pt, eta and phi residuals of the float32 latent (phi to almost nothing) and leaves E where
     the mass floor puts it;
  2. *quantize*: latent d becomes the integer round(z_d / step_d); the steps are chosen per
     chunk from the decoder's Jacobian so that the predicted pt, eta and phi residual widths
     (RMS over the chunk) are ``residual_ratio`` (default 1.0) times those of the unrefined
     float32 latent, i.e. "as good as ``--latent-dtype float32``", and stored in the chunk;
  3. *entropy-code*: per chunk and latent, a histogram of the high parts ``q >> k`` codes them
     with rANS (`constriction`'s ``AnsCoder`` and ``Categorical``); the low ``k`` bits go
     through the same coder as uniform symbols. The histogram's integer counts are stored, so
     the decoder rebuilds the same probabilities bit for bit on every machine (float64
     division, then constriction's own quantization; no transcendental functions).

  The decoder multiplies each integer by its step (float64, rounded once to float32): the
  latents it feeds the network are the same bits on every machine.

Never silently wrong: compress decodes every jet again (from the stored latents, as the
decoder will) and stores verbatim the jets it cannot reproduce within the tolerance (default
5e-3 relative in pt, 5e-3 absolute in eta and phi) and those whose decoded values are not
finite. Decoded NaN or inf in any other jet is an error, never an output.

No embedded decoder for a shipped model: a file names its model by the SHA-256 of the weights;
when that is one of the models shipped in ``jetzip/models/`` (which stay there forever), the
decoder is found there and the file does not carry its ~106 kB (``embed="auto"``).

Chunk payload, version 1 (little-endian)::

    u32 n_exact, u32 exact_nbytes
    latents            n_jets x dim of the config's dtype, C order
    zlib(u32 index x n_exact, f64 x 4 n_exact)   jets stored verbatim (source columns, file units)

Version-1.0 files (before the registry) hold the latents only; their config says
``"exact": false``.

Chunk payload, version 2 (little-endian)::

    u32 n_exact, u32 exact_nbytes, u32 latent_nbytes
    latent block (latent_nbytes; empty for a chunk of no jets):
        f64 step x dim
        per latent d: u8 k, i64 offset, u32 alphabet, u32 nbytes, zlib(u32 count x alphabet)
            (the histogram of (q_d >> k) - offset; its counts sum to n_jets)
        u32 words: one rANS stream: for d = 0, 1, ...: n high parts (when alphabet > 1), then
            n low parts uniform on [0, 2^k) (when k > 0)
    zlib(u32 index x n_exact, f64 x 4 n_exact)   jets stored verbatim, as in version 1

A verbatim jet's latent is stored as the integer 0 (its decoded value is not used).
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from typing import Any, Mapping

import numpy as np

from ..container import inflate_exact
from ..errors import FormatError, InputError, ModelMismatchError
from ..features import (REPRESENTATIONS, from_model_frame, outside_ranges, to_model_frame,
                        unencodable_jets, unencodable_reasons, wrap_phi)
from .base import Codec, DecodeContext, pack_verbatim, register, unpack_verbatim

LATENT_DTYPES = {"float32": "<f4", "float16": "<f2"}  # version 1: the latents literally
QUANTIZED = "quantized"  # version 2: refined, quantized, entropy-coded
DTYPE_CHOICES = (QUANTIZED, *LATENT_DTYPES)
DEFAULT_TOLERANCE = {"pt": 5e-3, "eta": 5e-3, "phi": 5e-3}
# The training's loss weights (jetzip.training.DEFAULT_TARGETS: E, pt relative; eta, phi
# absolute): what the refinement step minimizes, as the network was trained to.
REFINE_TARGETS = (2.0e-3, 1.0e-3, 1.5e-3, 1.2e-3)
DEFAULT_RESIDUAL_RATIO = 1.0
_EXACT = struct.Struct("<II")
_V2 = struct.Struct("<III")
_TABLE = struct.Struct("<BqII")
MAX_ALPHABET = 1 << 12  # high-part symbols per latent the encoder uses (the decoder takes up to 2^16)
MAX_DECODE_ALPHABET = 1 << 16
MAX_SHIFT = 20  # raw low bits per latent (constriction's uniform model takes sizes below 2^24)
MIN_STAT_JETS = 256  # fewer usable jets in a chunk: the fallback step, not the chunk's statistics
FALLBACK_STEP = 2.0 ** -12  # about the float32 latents' residuals for the shipped model
MIN_STEP, MAX_STEP = 2.0 ** -24, 1.0  # the steps the encoder chooses stay within these
MAX_REFINE_STEP = 0.1  # a Gauss-Newton move larger than this (latent units) is not trusted
FD_STEP = 2.0 ** -10  # finite-difference step of the decoder's Jacobian (latent units)
JAC_GRID_NODES = 32  # the Jacobian grid's nodes per latent axis (in u = tanh z); dim <= 3 only
JAC_GRID_EPS = 2.0 ** -12  # its finite-difference step in u
MAX_Q = 1 << 30  # |integer latent|: a finite latent beyond this is a verbatim jet anyway


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
    """3 numbers per jet from an AE_3D model; see the module doc.

    Args:
        model: the :class:`jetzip.model.Model` (full, for compress; decoder-only weights do
            for decompress).
        representation, units: the source table's (the latents live in the model frame).
        dtype: ``quantized`` (payload version 2), ``float32`` or ``float16`` (version 1).
        embed: whether the decoder weights go into the file (a ``DECW`` side record); ``"auto"``
            (or None): only when the model is not one shipped in ``jetzip/models/``.
        tolerance: round-trip tolerance (see :func:`parse_tolerance`); None for version-1.0
            files, which have no verbatim jets.
        device, batch_size, threads: how the network runs (:mod:`jetzip.engine`).
        residual_ratio: ``quantized`` only: the pt, eta and phi residual widths the quantization
            steps aim at, as a multiple of the float32 latents' (see the module doc).
    """

    codec_id = "latent"
    invalid_text = "NaN, inf, non-positive E or pt, or E < pt"

    def __init__(self, model, representation: str, units: str, dtype: str = "float32",
                 embed: bool | str | None = True,
                 tolerance: Mapping[str, float] | None = DEFAULT_TOLERANCE,
                 device: str = "auto", batch_size: int | None = None, threads: int | None = None,
                 model_meta: Mapping[str, Any] | None = None,
                 residual_ratio: float = DEFAULT_RESIDUAL_RATIO) -> None:
        if dtype not in DTYPE_CHOICES:
            raise InputError(f"unknown latent dtype {dtype!r}; use {', '.join(DTYPE_CHOICES)}")
        if representation not in REPRESENTATIONS:
            raise FormatError(f"unknown representation {representation!r}")
        if not (isinstance(residual_ratio, (int, float)) and math.isfinite(residual_ratio)
                and residual_ratio > 0):
            raise InputError(f"residual_ratio must be a positive number, not {residual_ratio!r}")
        if dtype == QUANTIZED and tolerance is None:
            raise InputError("quantized latents keep the verbatim jets: a tolerance is needed")
        self.model = model
        self.representation = representation
        self.units = units
        self.dtype = dtype
        self.version = 2 if dtype == QUANTIZED else 1
        if embed is None or embed == "auto":
            from ..model import shipped_model

            embed = model_meta is None and shipped_model(model.weights_sha256) is None
        self.embed = bool(embed)
        self.tolerance = None if tolerance is None else dict(tolerance)
        self.device = device
        self.batch_size = batch_size
        self.threads = threads
        self.residual_ratio = float(residual_ratio)
        self.model_meta = dict(model_meta) if model_meta is not None else {
            "name": model.name, "arch": model.arch.to_json(), "weights_sha256": model.weights_sha256,
            "decoder_sha256": model.decoder_sha256, "embedded": self.embed,
            "training_ranges": model.metadata.get("training_ranges")}
        self._encoder: Any = None  # engine.Encoder / Decoder, built on first use
        self._decoder: Any = None
        self.ranges = self.model_meta.get("training_ranges")
        self.outside = 0  # jets outside the training ranges, counted by encode
        self.exact = 0  # jets stored verbatim, counted by encode
        self.refined = 0  # jets whose latent the refinement step moved, counted by encode
        self.latent_nbytes = 0  # bytes of the coded latents, counted by encode (version 2)

    # -- configuration --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config = {"id": self.codec_id, "model": self.model_meta,
                  "normalization": self.model.normalization.to_json(),
                  "latent": {"dim": self.model.arch.latent, "dtype": self.dtype, "byte_order": "little"},
                  "representation": self.representation, "units": self.units,
                  "exact": self.tolerance is not None, "tolerance": self.tolerance}
        if self.version == 2:
            # The encoder's choices, for the record: the decoder needs none of them.
            config["version"] = 2
            config["quantization"] = {"refine": {"iterations": 1, "targets": list(REFINE_TARGETS)},
                                      "residual_ratio": self.residual_ratio, "coding": "rans"}
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: DecodeContext | None = None,
                    **runtime: Any) -> "LatentCodec":
        """Rebuild for decoding. `context` (:class:`~jetzip.codecs.DecodeContext`):
        ``side_records`` (the embedded ``DECW``), ``model`` (a model or path given by the
        user), ``path`` (for messages), ``device``, ``batch_size``, ``threads``. Without an
        embedded decoder or a given model, the model shipped in ``jetzip/models/`` with the
        config's SHA-256 is used.

        Raises:
            FormatError: malformed config or embedded decoder.
            ModelMismatchError: the given model is not the one the file was made with, or no
                decoder is embedded and none is found.
        """
        from ..model import Model, load_model, sha256, shipped_model, unpack_tensors

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

            candidate = shipped_model(weights_sha)
            if candidate is None:
                default = default_model_path()
                candidate = load_model(default) if os.path.isfile(default) else None
            if candidate is None or candidate.weights_sha256 != weights_sha:
                raise ModelMismatchError(
                    f"{where} does not embed its decoder (compressed with --no-embed-model) and no model "
                    f"shipped with this jetzip has its sha256 {weights_sha}; pass --model with that model")
            if candidate.arch != arch:
                raise FormatError(f"{where}: the model with its sha256 has another architecture")
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
            version = config.get("version", 1)
            tolerance = config.get("tolerance") if config.get("exact", False) else None
            if tolerance is not None:
                tolerance = {str(k): float(v) for k, v in dict(tolerance).items()}
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise FormatError(f"{where}: codec configuration is missing or has malformed fields ({exc})") from None
        if version not in (1, 2) or isinstance(version, bool):
            raise FormatError(f"{where}: latent codec version {version!r} is not known to this jetzip "
                              "(the file may come from a newer one)")
        if dtype not in (LATENT_DTYPES if version == 1 else (QUANTIZED,)):
            raise FormatError(f"{where}: unsupported latent dtype {dtype!r} for latent codec version {version}")
        if version == 2 and tolerance is None:
            raise FormatError(f"{where}: latent codec version 2 without a tolerance")
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
        """``latents``: (n_jets, dim), as stored (float32 or float16) or, for quantized latents,
        as the decoder feeds them to the network (float32; 0 for verbatim jets)."""
        return {"latents": latents_of(config, chunks)}

    def side_records(self) -> dict[str, bytes]:
        return {"DECW": self.model.packed("decoder")} if self.embed else {}

    def encode_report(self, n_jets: int) -> tuple[dict[str, Any], list[str]]:
        """``model``, ``model_sha256``, ``model_embedded``, ``latent_dtype``, ``exact_jets``
        (stored verbatim), ``outside_training_ranges``, and for quantized latents
        ``latent_bytes_per_jet`` (the coded latents alone) and ``refined_jets``; warnings for
        jets outside the training ranges and jets stored verbatim."""
        n = n_jets
        outside, exact = self.outside, self.exact
        stats: dict[str, Any] = {"model": self.model.name, "model_sha256": self.model.weights_sha256,
                                 "model_embedded": self.embed, "latent_dtype": self.dtype,
                                 "exact_jets": exact, "outside_training_ranges": outside}
        if self.version == 2:
            stats["latent_bytes_per_jet"] = self.latent_nbytes / n if n else None
            stats["refined_jets"] = self.refined
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
        from ..model import shipped_model

        model = dict(config.get("model") or {})
        latent = dict(config.get("latent") or {})
        if model.get("embedded"):
            where = "decoder embedded"
        elif shipped_model(str(model.get("weights_sha256"))) is not None:
            where = "shipped with jetzip, found by its sha256"
        else:
            where = "not embedded: needs --model with the model of this sha256"
        dtype = latent.get("dtype")
        if dtype == QUANTIZED:
            ratio = dict(config.get("quantization") or {}).get("residual_ratio")
            text = (f"{latent.get('dim')} quantized and rANS-coded (steps chosen per chunk for pt, eta, phi "
                    f"residuals {ratio} x the float32 latents')")
        else:
            text = f"{latent.get('dim')} x {dtype}"
        rows = [
            ("codec", f"latent version {config.get('version', 1)} ({latent.get('dim')}-number autoencoder "
                      "latent per jet)"),
            ("model", f"{model.get('name')} ({where})"),
            ("model sha256", str(model.get("weights_sha256"))),
            ("latent", text),
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
        """``mass_usable``, ``model`` (name), ``model_sha256``, ``model_embedded``,
        ``latent_dtype``, ``latent_version``, ``training_ranges`` (the model's, for the
        out-of-range fraction)."""
        model = dict(config.get("model") or {})
        return {"mass_usable": cls.mass_usable(config), "model": model.get("name"),
                "model_sha256": model.get("weights_sha256"), "model_embedded": bool(model.get("embedded")),
                "latent_dtype": dict(config.get("latent") or {}).get("dtype"),
                "latent_version": config.get("version", 1),
                "training_ranges": model.get("training_ranges")}

    @classmethod
    def payload_stats(cls, config: Mapping[str, Any], chunks: Any, context: DecodeContext | None = None
                      ) -> dict[str, Any]:
        """``latent_bytes``: the latents' own bytes (version 1: n_jets x dim x itemsize;
        version 2: the coded latent blocks), ``verbatim_bytes`` and ``verbatim_jets`` (the jets
        stored exactly)."""
        latent = dict(config.get("latent") or {})
        exact = bool(config.get("exact", False))
        lat_bytes = ex_bytes = ex_jets = 0
        for c in chunks:
            buf = memoryview(c.payload)
            if latent.get("dtype") == QUANTIZED:
                if len(buf) >= _V2.size:
                    k, nex, nlat = _V2.unpack_from(buf, 0)
                    lat_bytes, ex_bytes, ex_jets = lat_bytes + nlat, ex_bytes + nex, ex_jets + k
            else:
                itemsize = 2 if latent.get("dtype") == "float16" else 4
                lat_bytes += c.n_jets * int(latent.get("dim", 0)) * itemsize
                if exact and len(buf) >= _EXACT.size:
                    k, nex = _EXACT.unpack_from(buf, 0)
                    ex_bytes, ex_jets = ex_bytes + nex, ex_jets + k
        return {"latent_bytes": lat_bytes, "verbatim_bytes": ex_bytes, "verbatim_jets": ex_jets}

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
        x = enc.norm.apply(frame)
        z = enc.run(x)
        if self.ranges:
            self.outside += int(outside_ranges(frame, self.ranges).sum())
        q = steps = None
        if self.dtype == QUANTIZED:
            q, steps, moved = quantize_latents(self._engine("decoder"), x, z, self.tolerance or DEFAULT_TOLERANCE,
                                               self.residual_ratio, self._jacobian_grid(len(z)))
            self.refined += moved
            latents = dequantize(q, steps)
        else:
            latents = np.ascontiguousarray(z, dtype=LATENT_DTYPES[self.dtype])
        exact = np.zeros(0, np.int64)
        if self.tolerance is not None:
            back = self._decode_frame(latents)
            exact = np.flatnonzero(~self._close(back, frame))
            self.exact += len(exact)
        ex = b""
        if len(exact):
            ex = pack_verbatim(exact, np.stack([np.asarray(columns[r], np.float64)[exact]
                                                for r in REPRESENTATIONS[self.representation]], axis=1))
        if q is not None and steps is not None:
            q[exact] = 0  # not used by the decoder: the cheapest symbol
            block = encode_latents(q, steps) if len(q) else b""
            self.latent_nbytes += len(block)
            return _V2.pack(len(exact), len(ex), len(block)) + block + ex
        if self.tolerance is None:
            return latents.tobytes()
        return _EXACT.pack(len(exact), len(ex)) + latents.tobytes() + ex

    def _jacobian_grid(self, n: int) -> np.ndarray | None:
        """The decoder's Jacobian grid (built once per codec) when it is cheaper than forward
        differences at the `n` jets of a chunk: latent dim <= 3 and dim * n >= (dim + 1) *
        nodes^dim decoder runs. The choice depends on the chunk alone, never on earlier chunks."""
        dim = self.model.arch.latent
        if dim > 3 or dim * n < (dim + 1) * JAC_GRID_NODES ** dim:
            return None
        if getattr(self, "_grid", None) is None:
            self._grid = jacobian_grid(self._engine("decoder"), dim)
        return self._grid

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
        """(latents (n, dim) as the network gets them, verbatim jet indices, their columns (k, 4))
        of one chunk."""
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


# -- version 2: refinement, quantization, entropy coding ------------------------------------

def quantize_latents(decoder, x: np.ndarray, z: np.ndarray, tolerance: Mapping[str, float],
                     residual_ratio: float = DEFAULT_RESIDUAL_RATIO,
                     grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Refine and quantize one chunk's latents (see the module doc, version 2).

    Args:
        decoder: a :class:`jetzip.engine.Decoder` of the model (its ``norm`` and ``run``).
        x: (n, 4) float32 normalized network inputs (``Normalization.apply``), the targets.
        z: (n, dim) float32 latents from the encoder.
        tolerance: the verbatim tolerance (pt relative; eta, phi absolute): jets further off
            are left out of the chunk's statistics (they will be stored verbatim).
        residual_ratio: the pt, eta, phi residual widths to aim at, as a multiple of the
            float32 latents'.
        grid: the decoder's Jacobian on a grid (:func:`jacobian_grid`), looked up at each
            jet (:func:`lookup_jacobian`); None: forward differences at each jet (dim more runs of the decoder).

    Returns:
        (q: (n, dim) int64 integer latents, steps: (dim,) float64 quantization steps, the
        number of jets whose latent the refinement moved). The latents are ``dequantize(q, steps)``.

    Method: the decoder's Jacobian J (n, 4, dim); one Gauss-Newton step
    ``z - (J^T W J)^-1 J^T W e`` with W the training's loss weights (REFINE_TARGETS), kept only
    where it is finite and small (MAX_REFINE_STEP); then the steps that maximize sum(log step_d)
    subject to ``sum_d mean(J_od^2) step_d^2 / 12 <= budget_o`` for o = pt, eta, phi, where
    budget_o = ratio^2 mean(e32_o^2) - mean(e_ref_o^2) (the float32 latents' squared error e32
    and the refined one e_ref, linearized), at least (ratio / 4)^2 mean(e32_o^2). The steps are
    rounded down to powers of 2^(1/8).
    """
    n, dim = z.shape
    if n == 0:
        return np.zeros((0, dim), np.int64), np.full(dim, FALLBACK_STEP), 0
    norm = decoder.norm
    scale = np.asarray(norm.scale, np.float64)
    z32 = np.ascontiguousarray(z, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        out = decoder.run(z32).astype(np.float64)
        e = out - np.asarray(x, np.float64)
        period = 2 * math.pi / scale[3]  # phi / scale: the wrap in normalized units
        e[:, 3] = (e[:, 3] + period / 2) % period - period / 2
        jac = lookup_jacobian(grid, z32) if grid is not None else _jacobian_at(decoder, z32, out)
    good = np.isfinite(e).all(axis=1) & np.isfinite(jac).all(axis=(1, 2))
    e[~good] = 0.0
    jac[~good] = 0.0
    # one Gauss-Newton step on the training's weighted squared error
    w = (scale / np.asarray(REFINE_TARGETS)) ** 2
    a = np.einsum("noi,o,noj->nij", jac, w, jac)
    b = np.einsum("noi,o,no->ni", jac, w, e)
    ridge = 1e-9 * np.trace(a, axis1=1, axis2=2) / dim + 1e-300
    a += ridge[:, None, None] * np.eye(dim)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        delta = np.linalg.solve(a, b[..., None])[..., 0]
    ok = good & np.isfinite(delta).all(axis=1) & (np.abs(delta).max(axis=1) <= MAX_REFINE_STEP)
    delta[~ok] = 0.0
    refined = z32.astype(np.float64) - delta
    e_ref = e - np.einsum("noi,ni->no", jac, delta)
    # the chunk's statistics, over the jets the network reproduces within the tolerance
    tol_n = np.array([tolerance["pt"], tolerance["eta"], tolerance["phi"]]) / scale[1:4]
    usable = good & (np.abs(e[:, 1:4]) <= tol_n).all(axis=1)
    if usable.sum() < MIN_STAT_JETS:
        steps = np.full(dim, FALLBACK_STEP)
    else:
        ms32 = (e[usable, 1:4] ** 2).mean(axis=0)
        ms_ref = (e_ref[usable, 1:4] ** 2).mean(axis=0)
        budget = np.maximum(residual_ratio ** 2 * ms32 - ms_ref, (residual_ratio / 4) ** 2 * ms32)
        sens = (jac[usable][:, 1:4, :] ** 2).mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            steps = np.sqrt(12 * allocate_steps(sens, np.maximum(budget, 1e-30)))
            steps = 2.0 ** (np.floor(np.log2(steps) * 8) / 8)
        steps = np.where(np.isfinite(steps), np.clip(steps, MIN_STEP, MAX_STEP), FALLBACK_STEP)
    with np.errstate(invalid="ignore"):
        q = np.rint(refined / steps)
    q[~np.isfinite(q)] = 0
    q = np.clip(q, -MAX_Q, MAX_Q).astype(np.int64)
    return q, steps, int((delta != 0).any(axis=1).sum())


def allocate_steps(sens: np.ndarray, budget: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Quantization variances v (dim,) maximizing sum(log v) subject to ``sens @ v <= budget``.

    Args:
        sens: (n_outputs, dim) mean squared sensitivity of each output to each latent.
        budget: (n_outputs,) allowed added variance of each output, > 0.

    The Lagrange conditions give v_d = 1 / sum_o lambda_o sens_od; the multipliers are found by
    the fixed-point iteration lambda_o <- lambda_o (sens v)_o / budget_o, and v is scaled down
    at the end so that every constraint holds.
    """
    s = np.maximum(np.asarray(sens, np.float64), 1e-30)
    b = np.asarray(budget, np.float64)
    lam = np.ones(len(b)) / b
    for _ in range(iterations):
        v = 1.0 / (lam @ s)
        lam = lam * (s @ v) / b
    v = 1.0 / (lam @ s)
    return v * min(1.0, float(np.min(b / (s @ v))))


def _jacobian_at(decoder, z32: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The decoder's Jacobian (n, 4, dim) at each latent by forward differences (FD_STEP);
    `out` is the decoder's output at `z32`."""
    n, dim = z32.shape
    shifted = np.concatenate([z32 + np.float32(FD_STEP) * np.eye(dim, dtype=np.float32)[d] for d in range(dim)])
    dz = (shifted.astype(np.float64) - np.tile(z32, (dim, 1)).astype(np.float64)).reshape(dim, n, dim)
    moved = decoder.run(shifted).astype(np.float64).reshape(dim, n, 4)
    jac = np.empty((n, 4, dim))
    for d in range(dim):
        jac[:, :, d] = (moved[d] - out) / dz[d, :, d][:, None]
    return jac


def jacobian_grid(decoder, dim: int, nodes: int = JAC_GRID_NODES) -> np.ndarray:
    """The decoder's Jacobian with respect to u = tanh(z) (its first operation), by forward
    differences (JAC_GRID_EPS) at the cell centres of a regular grid on (-1, 1)^dim.

    Returns:
        float64 array of shape (nodes,) * dim + (4, dim). A pure function of the model: the
        same for every chunk, so chunks stay independent.
    """
    ax = -1 + (np.arange(nodes) + 0.5) * 2 / nodes
    g = np.stack(np.meshgrid(*([ax] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
    u = np.concatenate([g] + [g + JAC_GRID_EPS * np.eye(dim)[d] for d in range(dim)])
    z32 = np.arctanh(u).astype(np.float32)
    fed = np.tanh(z32.astype(np.float64)).reshape(dim + 1, -1, dim)  # the u the decoder really gets
    out = decoder.run(z32).astype(np.float64).reshape(dim + 1, -1, 4)
    jac = np.empty((len(g), 4, dim))
    for d in range(dim):
        jac[:, :, d] = (out[d + 1] - out[0]) / (fed[d + 1, :, d] - fed[0, :, d])[:, None]
    return jac.reshape((nodes,) * dim + (4, dim))


def lookup_jacobian(grid: np.ndarray, z32: np.ndarray) -> np.ndarray:
    """The decoder's Jacobian (n, 4, dim) with respect to z at each latent: the grid's
    (:func:`jacobian_grid`) value at the cell holding u = tanh(z), times 1 - u^2.

    The nearest node, not an interpolation: the refinement needs the Jacobian to first order
    only (on the shipped model, 8 % off on average, the refined pt, eta residuals are those of
    the exact Jacobian within 1 %), and one gather is several times cheaper.
    """
    n, dim = z32.shape
    nodes = grid.shape[0]
    u = np.tanh(z32.astype(np.float64))
    cell = np.clip(np.floor((u + 1) / 2 * nodes), 0, nodes - 1).astype(np.int64)
    flat = grid.reshape(-1, 4, dim)
    strides = nodes ** np.arange(dim - 1, -1, -1, dtype=np.int64)
    return flat[cell @ strides] * (1 - u ** 2)[:, None, :]


def dequantize(q: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Integer latents -> the float32 latents the network gets: q * step in float64, rounded once."""
    return (np.asarray(q, np.int64).astype(np.float64) * np.asarray(steps, np.float64)).astype(np.float32)


def _fit_histogram(v: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(k, offset, counts) coding `v` (int64) in the fewest estimated bits: the high parts
    ``(v >> k) - offset`` by their histogram, k raw bits each, plus the stored table."""
    n = len(v)
    vmin, vmax = int(v.min()), int(v.max())
    k = 0
    while (vmax >> k) - (vmin >> k) >= MAX_ALPHABET:
        k += 1
    best: tuple[float, int, int, np.ndarray] | None = None
    worse = 0
    while True:
        offset = vmin >> k
        hist = np.bincount((v >> k) - offset).astype(np.int64)
        nz = hist[hist > 0].astype(np.float64)
        bits = float((nz * np.log2(n / nz)).sum()) + n * k \
            + 8 * (_TABLE.size + len(zlib.compress(hist.astype("<u4").tobytes(), 9)))
        if best is None or bits < best[0]:
            best, worse = (bits, k, offset, hist), 0
        else:
            worse += 1
        if worse >= 2 or len(hist) == 1 or k >= MAX_SHIFT:
            break
        k += 1
    return best[1], best[2], best[3]


def _categorical(counts: np.ndarray):
    """constriction's categorical model of integer counts: the same on every machine (IEEE
    float64 division, then constriction's own integer quantization)."""
    import constriction

    c = counts.astype(np.float64)
    return constriction.stream.model.Categorical(c / c.sum(), perfect=False)


def encode_latents(q: np.ndarray, steps: np.ndarray) -> bytes:
    """The latent block of a version-2 payload (see the module doc) for integer latents
    `q` (n >= 1, dim) and their `steps` (dim,)."""
    import constriction

    from ..atomic import native_call

    n, dim = q.shape
    parts = [np.asarray(steps, "<f8").tobytes()]
    streams = []
    for d in range(dim):
        k, offset, counts = _fit_histogram(q[:, d])
        blob = zlib.compress(counts.astype("<u4").tobytes(), 9)
        parts.append(_TABLE.pack(k, offset, len(counts), len(blob)) + blob)
        hi = ((q[:, d] >> k) - offset).astype(np.int32)
        lo = (q[:, d] & ((1 << k) - 1)).astype(np.int32)
        streams.append((hi, lo, k, counts))
    with native_call():  # Ctrl-C inside constriction's Rust code: raised when it returns
        coder = constriction.stream.stack.AnsCoder()
        for hi, lo, k, counts in reversed(streams):  # a stack: what the decoder reads first goes in last
            if k:
                coder.encode_reverse(lo, constriction.stream.model.Uniform(1 << k))
            if len(counts) > 1:
                coder.encode_reverse(hi, _categorical(counts))
        parts.append(coder.get_compressed().astype("<u4").tobytes())
    return b"".join(parts)


def decode_latents(block: bytes | memoryview, n: int, dim: int, where: str = "chunk") -> np.ndarray:
    """The float32 latents (n, dim) of a version-2 latent block.

    Raises:
        FormatError: a malformed table, a histogram that does not count `n` jets, a corrupted
            or over-long rANS stream, non-finite latents.
    """
    import constriction

    from ..atomic import native_call

    buf = memoryview(block)
    if n == 0:
        if len(buf):
            raise FormatError(f"{where}: latent block of an empty chunk is not empty")
        return np.zeros((0, dim), np.float32)
    if len(buf) < 8 * dim:
        raise FormatError(f"{where}: latent block cut short")
    steps = np.frombuffer(buf, "<f8", dim).astype(np.float64)
    if not (np.isfinite(steps).all() and (steps > 0).all()):
        raise FormatError(f"{where}: quantization steps are not finite positive numbers")
    pos = 8 * dim
    tables = []
    for _ in range(dim):
        if pos + _TABLE.size > len(buf):
            raise FormatError(f"{where}: latent table cut short")
        k, offset, alphabet, nbytes = _TABLE.unpack_from(buf, pos)
        pos += _TABLE.size
        if k > MAX_SHIFT or not 1 <= alphabet <= MAX_DECODE_ALPHABET or abs(offset) > 1 << 31 \
                or pos + nbytes > len(buf):
            raise FormatError(f"{where}: malformed latent table")
        raw = inflate_exact(buf[pos:pos + nbytes], 4 * alphabet, f"{where}: latent table is corrupted")
        pos += nbytes
        counts = np.frombuffer(raw, "<u4").astype(np.int64)
        if int(counts.sum()) != n:
            raise FormatError(f"{where}: latent table counts {int(counts.sum())} jets, the chunk {n}")
        tables.append((k, offset, counts))
    rest = buf[pos:]
    if len(rest) % 4:
        raise FormatError(f"{where}: rANS stream has a partial word")
    try:
        with native_call():
            coder = constriction.stream.stack.AnsCoder(np.frombuffer(rest, "<u4").astype(np.uint32))
    except Exception:  # noqa: BLE001 - constriction refuses a stream that is no valid ANS state
        raise FormatError(f"{where}: rANS stream is corrupted") from None
    q = np.empty((n, dim), np.int64)
    try:
        with native_call():
            for d, (k, offset, counts) in enumerate(tables):
                hi = np.asarray(coder.decode(_categorical(counts), n), np.int64) if len(counts) > 1 \
                    else np.zeros(n, np.int64)
                lo = np.asarray(coder.decode(constriction.stream.model.Uniform(1 << k), n), np.int64) if k \
                    else np.zeros(n, np.int64)
                q[:, d] = ((hi + offset) << k) | lo
            done = coder.is_empty()
    except Exception:  # noqa: BLE001 - constriction's errors on a stream that runs out
        raise FormatError(f"{where}: rANS stream is corrupted") from None
    if not done:
        raise FormatError(f"{where}: rANS stream has data left over")
    with np.errstate(over="ignore", invalid="ignore"):
        lat = dequantize(q, steps)
    if not np.isfinite(lat).all():
        raise FormatError(f"{where}: latents are not finite")
    return lat


# -- payloads -------------------------------------------------------------------------------

def split_payload(payload: bytes | memoryview, n: int, dim: int, dtype: str, exact: bool,
                  where: str = "chunk") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latents (n, dim), verbatim jet indices, their columns (k, 4)) of one chunk payload
    (version 2 for dtype ``quantized``, else version 1)."""
    buf = memoryview(payload)
    if dtype == QUANTIZED:
        if len(buf) < _V2.size:
            raise FormatError(f"{where}: latent chunk is cut short")
        n_exact, n_ex, n_lat = _V2.unpack_from(buf, 0)
        if _V2.size + n_lat + n_ex != len(buf) or n_exact > n:
            raise FormatError(f"{where}: chunk sizes are inconsistent")
        lat = decode_latents(buf[_V2.size:_V2.size + n_lat], n, dim, where)
        index, vals = unpack_verbatim(buf[_V2.size + n_lat:], n_exact, n, where)
        return lat, index, vals
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
    if dtype not in DTYPE_CHOICES:
        raise FormatError(f"unsupported latent dtype {dtype!r}")
    parts = [split_payload(c.payload, c.n_jets, dim, dtype, bool(config.get("exact", False)))[0] for c in chunks]
    empty = np.float32 if dtype == QUANTIZED else LATENT_DTYPES[dtype]
    return np.concatenate(parts) if parts else np.zeros((0, dim), empty)


register(LatentCodec)
