"""The AE_3D family of autoencoders, and model files that load without executing code.

AE_3D_200 (the reference): Linear layers 4-200-100-50-3-50-100-200-4 with bias and tanh
between them, linear output. ``encode`` returns the *pre-tanh* output of the 50->3 layer
(the stored latent is unbounded); ``decode`` applies tanh to the latent first. 52,607
parameters. Other members differ only in their hidden sizes, kept in :class:`Architecture`.

A model file is a container (see :mod:`jetzip.container`) with magic ``\\x89JZM``, holding a
``HEAD`` record (JSON: architecture, normalization, training metadata and history), a
``WGTS`` record (packed float32 tensors, see :func:`pack_tensors`) and an ``END0`` record.
Nothing is unpickled; every shape is checked against the architecture before use.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import container
from .errors import FormatError, InputError
from .features import Normalization

MODEL_FORMAT_MAJOR = 1
MODEL_FORMAT_MINOR = 0
NAMED_ARCHITECTURES = {
    "AE_3D_200": (200, 100, 50),
    "AE_3D_100": (100, 100, 50),
    "AE_3D_50": (50, 50, 50),
}


MAX_HIDDEN_LAYERS = 8
MAX_WIDTH = 4096


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Sizes that rebuild a member of the family: n_features-hidden...-latent-...hidden-n_features."""

    hidden: tuple[int, ...] = (200, 100, 50)
    latent: int = 3
    n_features: int = 4
    activation: str = "tanh"

    @property
    def name(self) -> str:
        for name, hidden in NAMED_ARCHITECTURES.items():
            if hidden == self.hidden and self.latent == 3 and self.n_features == 4:
                return name
        return f"AE_{self.latent}D_" + "-".join(map(str, self.hidden))

    @property
    def encoder_sizes(self) -> list[int]:
        return [self.n_features, *self.hidden, self.latent]

    @property
    def decoder_sizes(self) -> list[int]:
        return [self.latent, *reversed(self.hidden), self.n_features]

    def tensor_shapes(self, part: str = "all") -> dict[str, tuple[int, ...]]:
        """Names and shapes of the parameters, in the canonical order used for hashing."""
        shapes: dict[str, tuple[int, ...]] = {}
        for prefix, sizes in (("encoder", self.encoder_sizes), ("decoder", self.decoder_sizes)):
            if part not in ("all", prefix):
                continue
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                shapes[f"{prefix}.{2 * i}.weight"] = (n_out, n_in)
                shapes[f"{prefix}.{2 * i}.bias"] = (n_out,)
        return shapes

    def to_json(self) -> dict:
        return {"name": self.name, "hidden": list(self.hidden), "latent": self.latent,
                "n_features": self.n_features, "activation": self.activation}

    @classmethod
    def from_json(cls, d: Mapping) -> "Architecture":
        try:
            arch = cls(tuple(int(h) for h in d["hidden"]), int(d["latent"]),
                       int(d["n_features"]), str(d["activation"]))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # int(1e999) overflows
            raise FormatError(f"malformed architecture record: {exc!r}") from None
        if arch.activation != "tanh" or arch.n_features != 4 or not arch.within_limits():
            raise FormatError(f"unsupported architecture {d!r}")
        return arch

    def within_limits(self) -> bool:
        """What model files may hold (bounds what a hostile file can make us allocate)."""
        sizes = [*self.hidden, self.latent, self.n_features]
        return 1 <= len(self.hidden) <= MAX_HIDDEN_LAYERS and all(1 <= s <= MAX_WIDTH for s in sizes)

    @classmethod
    def parse(cls, text: str) -> "Architecture":
        """'AE_3D_200' or explicit sizes such as '200,100,50:3' (hidden sizes, then latent)."""
        if text in NAMED_ARCHITECTURES:
            return cls(NAMED_ARCHITECTURES[text])
        from .errors import JetzipError

        hidden_text, _, latent_text = str(text).partition(":")
        parts = hidden_text.replace("-", ",").split(",")  # '200-100-50' works too
        try:
            if not all(p.strip().isdigit() for p in parts) or (latent_text and not latent_text.strip().isdigit()):
                raise ValueError
            hidden = tuple(int(p) for p in parts)
            latent = int(latent_text or 3)
        except ValueError:
            hidden, latent = (), 0
        if not hidden or latent < 1 or min(hidden) < 1:
            raise JetzipError(f"unknown architecture {text!r}; use one of "
                              f"{', '.join(NAMED_ARCHITECTURES)} or hidden sizes like '200,100,50:3'")
        arch = cls(hidden, latent)
        if not arch.within_limits():
            raise JetzipError(f"architecture {text!r} is outside what model files hold: 1 to "
                              f"{MAX_HIDDEN_LAYERS} hidden layers, sizes 1 to {MAX_WIDTH}")
        return arch


def build_network(arch: Architecture):
    """The torch module for `arch` (imports torch lazily)."""
    import torch
    from torch import nn

    def stack(sizes: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        return nn.Sequential(*layers)

    class AutoEncoder(nn.Module):
        """encode -> pre-tanh latent; decode applies tanh to the latent first."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = stack(arch.encoder_sizes)
            self.decoder = stack(arch.decoder_sizes)

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.encoder(x)

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return self.decoder(torch.tanh(z))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decode(self.encode(x))

    return AutoEncoder()


def pack_tensors(tensors: Mapping[str, np.ndarray]) -> bytes:
    """Serialize float32 arrays: u32 manifest length | JSON manifest | raw little-endian data."""
    manifest, blobs, offset = [], [], 0
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        manifest.append({"name": name, "shape": list(arr.shape), "offset": offset})
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(manifest, separators=(",", ":")).encode()
    return struct.pack("<I", len(head)) + head + b"".join(blobs)


def unpack_tensors(payload: bytes, expected: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_tensors`, accepting exactly the names and shapes in `expected`."""
    try:
        (n,) = struct.unpack_from("<I", payload)
        if n > len(payload) - 4:
            raise ValueError("manifest longer than record")
        manifest = json.loads(payload[4:4 + n])
        data = memoryview(payload)[4 + n:]
        got = {m["name"]: (tuple(int(s) for s in m["shape"]), int(m["offset"])) for m in manifest}
    except (struct.error, ValueError, TypeError, KeyError, AttributeError, OverflowError,
            RecursionError) as exc:  # int(1e999) overflows; deeply nested JSON recurses
        raise FormatError(f"malformed weights record: {exc}") from None
    if {k: v[0] for k, v in got.items()} != dict(expected):
        raise FormatError("weights do not match the architecture: expected "
                          f"{dict(expected)}, found { {k: v[0] for k, v in got.items()} }")
    out = {}
    for name, shape in expected.items():
        offset = got[name][1]
        count = int(np.prod(shape))
        if offset < 0 or offset + 4 * count > len(data):
            raise FormatError(f"weights record is too short for {name}")
        arr = np.frombuffer(data, dtype="<f4", count=count, offset=offset).reshape(shape)
        if not np.isfinite(arr).all():
            raise FormatError(f"weights record holds non-finite values in {name}")
        out[name] = arr.astype(np.float32)
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass
class Model:
    """A trained autoencoder: architecture, weights (numpy), normalization and metadata."""

    arch: Architecture
    weights: dict[str, np.ndarray]
    normalization: Normalization
    name: str = "AE_3D_200"
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)

    def packed(self, part: str = "all") -> bytes:
        shapes = self.arch.tensor_shapes(part)
        return pack_tensors({k: self.weights[k] for k in shapes})

    @property
    def weights_sha256(self) -> str:
        """Identity of the model: SHA-256 of its packed weights (encoder and decoder)."""
        return sha256(self.packed("all"))

    @property
    def decoder_sha256(self) -> str:
        return sha256(self.packed("decoder"))

    def network(self, part: str = "all"):
        """A torch module with these weights (eval mode, float32, CPU)."""
        import torch

        net = build_network(self.arch)
        shapes = self.arch.tensor_shapes(part)
        state = {k: torch.from_numpy(np.array(v)) for k, v in self.weights.items() if k in shapes}
        missing, unexpected = net.load_state_dict(state, strict=False)
        wanted_missing = [k for k in missing if k in shapes]
        if wanted_missing or unexpected:
            raise FormatError(f"weights do not fit the network: missing {wanted_missing}, "
                              f"unexpected {unexpected}")
        return net.eval()

    @classmethod
    def from_network(cls, net, arch: Architecture, normalization: Normalization,
                     **kw: Any) -> "Model":
        weights = {k: v.detach().cpu().numpy().astype(np.float32)
                   for k, v in net.state_dict().items()}
        return cls(arch, weights, normalization, **kw)

    def header(self) -> dict:
        return {"kind": "jetzip-model", "name": self.name, "arch": self.arch.to_json(),
                "normalization": self.normalization.to_json(),
                "weights_sha256": self.weights_sha256, "decoder_sha256": self.decoder_sha256,
                "n_parameters": int(sum(v.size for v in self.weights.values())),
                "metadata": self.metadata, "history": self.history}

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a temporary name in the same folder, then rename."""
        from .atomic import atomic_output

        with atomic_output(path, force=True) as tmp, open(tmp, "wb") as f:
            container.write_preamble(f, container.MODEL_MAGIC, MODEL_FORMAT_MAJOR, MODEL_FORMAT_MINOR)
            container.write_record(f, "HEAD", json.dumps(self.header(), sort_keys=True).encode())
            container.write_record(f, "WGTS", self.packed("all"))
            container.write_record(f, "END0", b"{}")


def load_model(path: str | os.PathLike) -> Model:
    """Read a model file written by :meth:`Model.save`; raises FormatError on any damage."""
    path = Path(path)
    what = "jetzip model file"
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        from .errors import InputError
        raise InputError(f"model file {path} does not exist") from None
    except OSError as exc:
        from .errors import InputError
        raise InputError(f"cannot open model file {path}: {exc.strerror}") from None
    with f:
        container.read_preamble(f, container.MODEL_MAGIC, what, MODEL_FORMAT_MAJOR, str(path))
        records = {}
        for rec in container.iter_records(f, f"{what} {path}"):
            if rec.tag in records:
                raise FormatError(f"{what} {path}: duplicate {rec.tag} record")
            if rec.tag not in ("HEAD", "WGTS", "END0") and container.is_critical(rec.tag):
                raise FormatError(f"{what} {path} needs a newer jetzip (unknown section {rec.tag})")
            records[rec.tag] = rec.payload
            if rec.tag == "END0":
                # Nothing follows END0: appended bytes mean a damaged or spliced file.
                if f.read(1):
                    raise FormatError(f"{what} {path}: unexpected bytes after the END0 record")
                break
    if "END0" not in records or "HEAD" not in records or "WGTS" not in records:
        raise FormatError(f"{what} {path} is truncated or incomplete")
    header = parse_json(records["HEAD"], f"{what} {path}")
    arch = Architecture.from_json(header.get("arch", {}))
    try:
        normalization = Normalization.from_json(header.get("normalization", {}))
    except OverflowError:  # float() of a JSON integer beyond float range
        raise FormatError(f"{what} {path}: malformed normalization record") from None
    metadata, history = header.get("metadata") or {}, header.get("history") or []
    if not isinstance(metadata, dict) or not isinstance(history, list) \
            or not all(isinstance(h, dict) for h in history):
        raise FormatError(f"{what} {path}: header has malformed metadata or history")
    weights = unpack_tensors(records["WGTS"], arch.tensor_shapes("all"))
    model = Model(arch, weights, normalization, name=str(header.get("name", arch.name)),
                  metadata=dict(metadata), history=list(history))
    if header.get("weights_sha256") != model.weights_sha256:
        raise FormatError(f"{what} {path}: weights do not match their recorded SHA-256")
    return model


def parse_json(payload: bytes, what: str) -> dict:
    """Decode a JSON object record, as a FormatError on any problem."""
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"{what}: malformed JSON header ({exc.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise FormatError(f"{what}: header is not a JSON object")
    return value


DEFAULT_MODEL_NAME = "AE_3D_200.jzm"
SHIPPED_MODELS = Path(__file__).resolve().parent / "models"  # package data: kept there forever


@functools.lru_cache(maxsize=1)
def _shipped_index() -> dict[str, Path]:
    """weights SHA-256 -> path of every model shipped in ``jetzip/models/`` (read once)."""
    index: dict[str, Path] = {}
    for path in sorted(SHIPPED_MODELS.glob("*.jzm")):
        try:
            index.setdefault(load_model(path).weights_sha256, path)
        except (FormatError, InputError):  # a damaged installation: that model is not found
            continue
    return index


@functools.lru_cache(maxsize=4)
def _load_shipped(path: Path) -> Model:
    return load_model(path)


def shipped_model(weights_sha256: str) -> Model | None:
    """The model shipped with jetzip (``jetzip/models/*.jzm``) whose weights have this
    SHA-256 (:attr:`Model.weights_sha256`), or None. Files made with a shipped model need not
    embed its decoder: every shipped model stays in the package, and a new one gets a new name."""
    path = _shipped_index().get(str(weights_sha256))
    return None if path is None else _load_shipped(path)


def default_model_path() -> Path:
    """$JETZIP_MODEL, else the model shipped inside the package (``jetzip/models/``)."""
    env = os.environ.get("JETZIP_MODEL")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "models" / DEFAULT_MODEL_NAME


def resolve_model(model: Model | str | os.PathLike | None) -> Model:
    """`model` as a :class:`Model`: itself, a loaded model file, a model shipped in the package
    by name (``AE_3D_200``, ``AE_3D_200_pt20``; a file of that name wins), or the default model.

    Raises:
        InputError: no default model found. FormatError: a damaged model file.
    """
    if isinstance(model, Model):
        return model
    path = Path(model) if model is not None else default_model_path()
    shipped = Path(__file__).resolve().parent / "models" / f"{model}.jzm"
    if model is not None and not path.exists() and os.sep not in str(model) and shipped.exists():
        path = shipped  # a shipped model by name: -m AE_3D_200_pt20
    if model is None and not path.exists():
        raise InputError(f"no default model at {path}; pass --model or set JETZIP_MODEL")
    return load_model(path)
