"""Training: fit the normalization, train an autoencoder with one-cycle AdamW, keep the best.

``train_frames`` works on an in-memory array of jets in the model frame (E, pt, eta, phi in
GeV) so it can be used from Python directly; :func:`jetzip.train` (in :mod:`jetzip.api`) reads
tables, calls it and saves the model file with its history and metadata.

The loss is a weighted MSE in normalized space. The weights make one unit of loss mean the
same for every variable: w_i = (scale_i / tol_i)^2, where scale_i is the normalization scale
and tol_i the residual we aim for (relative for E and pt, absolute for eta and phi). Without
them, standardization spends the network's capacity on log E / log pt and inflates the eta
and phi residuals.

Determinism: on CPU, the same data, options, seed and thread count give identical weights.
Checkpoints (every epoch, ``<output>.ckpt``) are read with ``torch.load(weights_only=True)``,
which refuses anything but tensors and plain containers.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Callable, TypedDict

import numpy as np

from .errors import FormatError, JetzipError
from .features import Normalization, unencodable_jets, unencodable_reasons
from .model import Architecture, Model, build_network
from .residuals import frame_columns, residuals, summarize_all

# Residual each variable should reach: E, pt relative; eta, phi absolute.
DEFAULT_TARGETS = (2.0e-3, 1.0e-3, 1.5e-3, 1.2e-3)


@dataclasses.dataclass
class TrainOptions:
    arch: str = "AE_3D_200"
    epochs: int = 50
    batch_size: int = 256
    lr_max: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    targets: tuple[float, float, float, float] = DEFAULT_TARGETS
    normalization: str = "log-E-over-p/log-pt/linear-eta-phi"
    max_val_jets: int = 200_000  # validation pass cost stays bounded on huge samples

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "TrainOptions":
        """Refuse what would fail late (after reading the data) or write an unloadable model."""
        from .features import NORMALIZATION_KINDS

        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise JetzipError(f"{name} must be a positive integer, not {v!r}")

        for name in ("epochs", "batch_size", "patience", "max_val_jets"):
            positive_int(name)
            setattr(self, name, int(getattr(self, name)))  # numpy scalars would reach torch
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise JetzipError(f"seed must be a non-negative integer, not {self.seed!r}")
        self.seed = int(self.seed)
        def number(v) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
                and math.isfinite(v)

        for name, low_ok in (("lr_max", False), ("weight_decay", True)):
            v = getattr(self, name)
            if not number(v) or v < 0 or (v == 0 and not low_ok):
                raise JetzipError(f"{name} must be a finite {'non-negative' if low_ok else 'positive'} "
                                  f"number, not {v!r}")
            setattr(self, name, float(v))  # plain floats: checkpoints load with weights_only
        if not number(self.val_fraction) or not 0 < self.val_fraction < 1:
            raise JetzipError(f"val_fraction must be between 0 and 1, not {self.val_fraction!r}")
        self.val_fraction = float(self.val_fraction)
        t = tuple(self.targets) if isinstance(self.targets, (list, tuple, np.ndarray)) else ()
        if len(t) != 4 or not all(number(x) and x > 0 for x in t):
            raise JetzipError(f"targets must be 4 finite positive numbers (E, pt, eta, phi), not {self.targets!r}")
        e, pt, eta, phi = (float(x) for x in t)
        self.targets = (e, pt, eta, phi)
        if self.normalization not in NORMALIZATION_KINDS:
            raise JetzipError(f"unknown normalization {self.normalization!r}; use "
                              f"{' or '.join(NORMALIZATION_KINDS)}")
        Architecture.parse(self.arch)
        if not isinstance(self.device, str):
            raise JetzipError(f"device must be a string such as 'cpu' or 'cuda', not {self.device!r}")
        return self


@dataclasses.dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float


Reporter = Callable[[str, dict[str, Any]], None]


class _Best(TypedDict):
    """The best epoch so far: its validation loss, its weights (None until a loss is finite), its number."""
    val_loss: float
    state: dict[str, Any] | None
    epoch: int


def _quiet(event: str, info: dict[str, Any]) -> None:  # noqa: ARG001
    pass


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic shuffled split into (train, validation) indices."""
    if not 0 < val_fraction < 1:
        raise JetzipError(f"--val-fraction must be between 0 and 1, not {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    if n - n_val < 1:
        raise JetzipError(f"need at least 2 jets to train, got {n}")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def loss_weights(norm: Normalization, targets: tuple[float, ...]) -> np.ndarray:
    w = (np.asarray(norm.scale) / np.asarray(targets)) ** 2
    return (w / w.mean()).astype(np.float32)


def train_frames(frame: np.ndarray, options: TrainOptions, checkpoint: str | None = None,
                 resume: bool = False, report: Reporter = _quiet) -> Model:
    """Train on jets in the model frame; returns the best model on the validation split."""
    import torch

    from .device import resolve_device

    options.validate()
    bad = unencodable_jets(frame)
    if bad.any():
        reasons = ", ".join(f"{k} {r}" for r, k in unencodable_reasons(frame[bad]).items())
        raise JetzipError(f"{int(bad.sum())} of {len(frame)} training jets cannot be encoded ({reasons})")
    arch = Architecture.parse(options.arch)
    train_idx, val_idx = split(len(frame), options.val_fraction, options.seed)
    norm = Normalization.fit(frame[train_idx], options.normalization)
    weights = torch.from_numpy(loss_weights(norm, options.targets))
    device = resolve_device(options.device)
    # resident on the device for the whole run: one copy, not one per batch (the GPU's gain)
    x_train = torch.from_numpy(norm.apply(frame[train_idx])).to(device)
    val_idx_eval = val_idx[: options.max_val_jets]
    x_val = torch.from_numpy(norm.apply(frame[val_idx_eval])).to(device)

    torch.manual_seed(options.seed)
    net = build_network(arch).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=options.lr_max, weight_decay=options.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / options.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=options.lr_max,
                                                total_steps=options.epochs * steps_per_epoch)
    w_dev = weights.to(device)
    history: list[dict[str, float]] = []
    best: _Best = {"val_loss": math.inf, "state": None, "epoch": -1}
    start_epoch = 0
    gen = torch.Generator().manual_seed(options.seed)

    data_key = _data_key(frame)
    finished = False
    if resume and checkpoint and os.path.exists(checkpoint):
        state = _load_checkpoint(checkpoint)
        changed = _differences(state, _options_key(options), data_key)
        if changed:
            raise JetzipError(f"checkpoint {checkpoint} was made with other {changed}; resume with "
                              "the same data and options, or remove it and drop --resume")
        try:
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            gen.set_state(state["gen"])
            history = [dict(h) for h in state["history"]]
            best = {"val_loss": float(state["best_val_loss"]), "state": state["best_net"],
                    "epoch": int(state["best_epoch"])}
            start_epoch = int(state["epoch"]) + 1
            finished = bool(state.get("finished", False))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise FormatError(f"{checkpoint}: damaged jetzip checkpoint ({type(exc).__name__}); "
                              "remove it and drop --resume") from None
        report("resumed", {"epoch": start_epoch})
    elif resume:
        raise JetzipError(f"--resume: no checkpoint at {checkpoint}")

    def val_loss() -> float:
        net.eval()
        with torch.inference_mode():
            total = 0.0
            for i in range(0, len(x_val), 65536):
                xb = x_val[i:i + 65536]
                total += float((((net(xb) - xb) ** 2) * w_dev).sum())
        net.train()
        return total / (len(x_val) * 4)

    report("start", {"epochs": options.epochs, "steps_per_epoch": steps_per_epoch,
                     "n_train": len(train_idx), "n_val": len(val_idx), "device": str(device)})
    # OneCycleLR rises for its first 30 % of steps; early stopping only counts after that
    warmup_epochs = math.ceil(0.3 * options.epochs)
    stale = 0 if best["epoch"] < 0 else max(0, len(history) - 1 - max(best["epoch"], warmup_epochs - 1))
    for epoch in range(start_epoch, options.epochs if not finished else start_epoch):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(len(x_train), generator=gen).to(device)  # the CPU generator: same order anywhere
        # the running loss stays on the device (float64, as a Python float would add it) and is
        # read every 50 steps: no wait for the GPU after every batch
        running_t = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0
        for step in range(steps_per_epoch):
            idx = perm[step * options.batch_size:(step + 1) * options.batch_size]
            xb = x_train[idx]
            loss = (((net(xb) - xb) ** 2) * w_dev).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running_t += loss.detach().double() * len(idx)
            seen += len(idx)
            if step % 50 == 0:
                report("batch", {"epoch": epoch, "step": step, "loss": float(running_t) / seen})
        running = float(running_t)
        record = EpochRecord(epoch, running / seen, val_loss(), float(sched.get_last_lr()[0]),
                             time.perf_counter() - t0)
        history.append(dataclasses.asdict(record))
        if record.val_loss < best["val_loss"]:
            best = {"val_loss": record.val_loss, "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
            stale = 0
        elif epoch >= warmup_epochs:
            stale += 1  # while the one-cycle rate still rises, a worse epoch says nothing
        stop = stale >= options.patience
        if checkpoint:  # 'finished' makes --resume after an early stop rebuild the same model
            _save_checkpoint(checkpoint, net, opt, sched, gen, history, best, epoch, options,
                             data_key, finished=stop or epoch == options.epochs - 1)
        report("epoch", {**dataclasses.asdict(record), "best_epoch": best["epoch"]})
        if stop:
            report("early_stop", {"epoch": epoch})
            break

    if best["state"] is None:
        raise JetzipError("training diverged: the validation loss was never finite (NaN or inf); "
                          "lower --lr-max or check the inputs")
    net.load_state_dict(best["state"])
    net = net.cpu().eval()
    model = Model.from_network(net, arch, norm, name=arch.name, history=history)
    val_frame = frame[val_idx_eval]
    summary = summarize_all(residuals(frame_columns(val_frame),
                                      frame_columns(reconstruct(model, val_frame))))
    model.metadata.update({
        "options": options.to_json(),
        "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
        "best_epoch": best["epoch"], "best_val_loss": best["val_loss"],
        "final_train_loss": history[-1]["train_loss"] if history else None,
        "val_residuals": summary,
        "training_ranges": training_ranges(frame[train_idx]),
    })
    return model


def training_ranges(frame: np.ndarray) -> dict[str, list[float]]:
    """The box of (E, pt, |eta|) the model saw; compress warns about jets outside it."""
    return {"E": [float(frame[:, 0].min()), float(frame[:, 0].max())],
            "pt": [float(frame[:, 1].min()), float(frame[:, 1].max())],
            "abs_eta": [0.0, float(np.abs(frame[:, 2]).max())]}


def reconstruct(model: Model, frame: np.ndarray) -> np.ndarray:
    """Encode and decode in float32 on CPU: the round trip compress + decompress performs."""
    import torch

    net = model.network()
    x = torch.from_numpy(model.normalization.apply(frame))
    with torch.inference_mode():
        out = torch.cat([net(x[i:i + 65536]) for i in range(0, len(x), 65536)]).numpy()
    return model.normalization.invert(out)


def _options_key(options: TrainOptions) -> dict:
    """Options a resumed run must share (the one-cycle schedule depends on the epochs too)."""
    d = options.to_json()
    d.pop("patience")
    d.pop("device")
    d["targets"] = [float(t) for t in d["targets"]]
    return d


def _data_key(frame: np.ndarray) -> str:
    """The training jets themselves: other files, units or columns give another key."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(frame, dtype=np.float64).tobytes()).hexdigest()


def _differences(state: dict, options_key: dict, data_key: str) -> str:
    """What a checkpoint was made with that differs now, in words ('' if nothing)."""
    saved_options = state.get("options")
    saved = saved_options if isinstance(saved_options, dict) else {}
    changed = [f"{k} ({saved.get(k)!r}, now {v!r})" for k, v in options_key.items() if saved.get(k) != v]
    if state.get("data_sha256") != data_key:
        changed.append("training jets (files, units, columns or --max-jets)")
    return "; ".join(changed)


def _load_checkpoint(path: str) -> dict:
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, OSError, AttributeError) as exc:
        raise FormatError(f"{path}: not a jetzip checkpoint, or damaged ({type(exc).__name__}); "
                          "remove it and drop --resume") from None
    if not isinstance(state, dict) or "net" not in state:
        raise FormatError(f"{path}: not a jetzip checkpoint; remove it and drop --resume")
    return state


def _save_checkpoint(path, net, opt, sched, gen, history, best, epoch, options, data_key,
                     finished: bool) -> None:
    import torch

    from .atomic import atomic_output

    state = {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
             "gen": gen.get_state(), "history": history, "best_val_loss": best["val_loss"],
             "best_net": best["state"], "best_epoch": best["epoch"], "epoch": epoch,
             "options": _options_key(options), "data_sha256": data_key, "finished": finished}
    with atomic_output(path, force=True) as tmp:
        torch.save(state, tmp)


def read_frames(inputs: list[str], *, max_jets: int | None = None, drop_invalid: bool = False,
                warn: Callable[[str], None] = lambda m: None, **table_options: Any) -> tuple[np.ndarray, list[dict]]:
    """Read jets from tables into one model-frame array; returns it and a per-file summary."""
    from .features import to_model_frame
    from .tables import open_table

    frames, files = [], []
    total = 0
    for path in inputs:
        source = open_table(path, **{"drop_branches": ("*",), **table_options})  # jets only
        try:
            info = source.info
            if info.units_inferred:
                warn(f"{path}: assuming {info.units} ({info.units_reason})")
            n_file = 0
            for chunk in source.chunks(1 << 20):
                frame = to_model_frame(chunk.columns, info.representation, info.units)
                bad = unencodable_jets(frame)  # the same rule as compress
                if bad.any():
                    if not drop_invalid:
                        from .tables import describe_jet

                        reasons = ", ".join(f"{k} {r}" for r, k in unencodable_reasons(frame[bad]).items())
                        raise JetzipError(f"{path}: jets that cannot be encoded ({reasons} in this chunk of "
                                          f"{len(frame)}); the first is "
                                          f"{describe_jet(info, chunk, int(np.argmax(bad)))}. Fix the "
                                          "input or pass --drop-invalid to leave them out")
                    frame = frame[~bad]
                if max_jets is not None:
                    frame = frame[: max(0, max_jets - total)]
                frames.append(frame)
                total += len(frame)
                n_file += len(frame)
                if max_jets is not None and total >= max_jets:
                    break
        finally:
            source.close()
        files.append({"file": os.path.basename(path), "sha256": file_sha256(path), "n_jets": n_file,
                      "units": info.units, "layout": info.layout})
        if max_jets is not None and total >= max_jets:
            break
    if total == 0:
        raise JetzipError("no jets to train on")
    return np.concatenate(frames), files


def file_sha256(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


TABLE_OPTIONS = ("tree", "columns", "preset", "collection", "units")


def train(inputs: str | list[str], output: str, *, options: TrainOptions | dict | None = None,
          resume: bool = False, force: bool = False, max_jets: int | None = None,
          drop_invalid: bool = False, report: Reporter = _quiet,
          warn: Callable[[str], None] = lambda m: None, **kwargs: Any) -> Model:
    """Train a model on jet tables and save it to `output` (checkpoint at `output`.ckpt).

    Training options come as `options` (a TrainOptions or a dict) or as keywords
    (``epochs=20, arch="AE_3D_100"``); table options (tree, columns, preset, collection, units)
    as keywords too.
    """
    from . import __version__
    from .atomic import check_output

    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = sorted(set(kwargs) - fields - set(TABLE_OPTIONS))
    if unknown:
        raise JetzipError(f"train: unknown argument(s) {', '.join(unknown)}; training options are "
                          f"{', '.join(sorted(fields))}; table options {', '.join(TABLE_OPTIONS)}")
    table_options = {k: v for k, v in kwargs.items() if k in TABLE_OPTIONS}
    chosen = dataclasses.asdict(options) if isinstance(options, TrainOptions) else dict(options or {})
    bad = sorted(set(chosen) - fields)
    if bad:
        raise JetzipError(f"train: unknown training option(s) {', '.join(bad)}")
    chosen.update({k: v for k, v in kwargs.items() if k in fields})
    options = TrainOptions(**chosen).validate()
    if str(output) == "-":
        raise JetzipError("a model cannot go to standard output; give a file name")
    if max_jets is not None and (isinstance(max_jets, bool) or not isinstance(max_jets, (int, np.integer))
                                 or max_jets < 2):
        raise JetzipError(f"max_jets must be an integer of at least 2, not {max_jets!r}")
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    check_output(output, force or resume, inputs)
    frame, files = read_frames(inputs, max_jets=max_jets, drop_invalid=drop_invalid, warn=warn,
                               **table_options)
    t0 = time.perf_counter()
    model = train_frames(frame, options, checkpoint=str(output) + ".ckpt", resume=resume, report=report)
    model.metadata.update({"jetzip_version": __version__, "data": files, "n_jets": int(len(frame)),
                           "train_seconds": sum(h["seconds"] for h in model.history),
                           "wall_seconds_this_run": time.perf_counter() - t0,
                           "torch_threads": _threads()})
    check_output(output, True, inputs)
    model.save(output)
    return model


def _threads() -> int:
    import torch
    return torch.get_num_threads()
