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
from typing import Any, Callable

import numpy as np

from .errors import JetzipError
from .features import Normalization, invalid_jets
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


@dataclasses.dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float


Reporter = Callable[[str, dict[str, Any]], None]


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

    bad = invalid_jets(frame)
    if bad.any():
        raise JetzipError(f"{int(bad.sum())} of {len(frame)} training jets are invalid "
                          "(NaN, inf, or non-positive E or pt)")
    arch = Architecture.parse(options.arch)
    train_idx, val_idx = split(len(frame), options.val_fraction, options.seed)
    norm = Normalization.fit(frame[train_idx], options.normalization)
    weights = torch.from_numpy(loss_weights(norm, options.targets))
    device = resolve_device(options.device)
    x_train = torch.from_numpy(norm.apply(frame[train_idx]))
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
    best = {"val_loss": math.inf, "state": None, "epoch": -1}
    start_epoch = 0
    gen = torch.Generator().manual_seed(options.seed)

    if resume and checkpoint and os.path.exists(checkpoint):
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state.get("options") != _options_key(options) or state.get("n_jets") != len(frame):
            raise JetzipError(f"checkpoint {checkpoint} was made with other options or data; "
                              "remove it or drop --resume")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        history = [dict(h) for h in state["history"]]
        best = {"val_loss": float(state["best_val_loss"]), "state": state["best_net"],
                "epoch": int(state["best_epoch"])}
        start_epoch = int(state["epoch"]) + 1
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
    for epoch in range(start_epoch, options.epochs):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(len(x_train), generator=gen)
        running, seen = 0.0, 0
        for step in range(steps_per_epoch):
            idx = perm[step * options.batch_size:(step + 1) * options.batch_size]
            xb = x_train[idx].to(device, non_blocking=True)
            loss = (((net(xb) - xb) ** 2) * w_dev).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
            if step % 50 == 0:
                report("batch", {"epoch": epoch, "step": step, "loss": running / seen})
        record = EpochRecord(epoch, running / seen, val_loss(), sched.get_last_lr()[0],
                             time.perf_counter() - t0)
        history.append(dataclasses.asdict(record))
        if record.val_loss < best["val_loss"]:
            best = {"val_loss": record.val_loss, "epoch": epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
            stale = 0
        elif epoch >= warmup_epochs:
            stale += 1  # while the one-cycle rate still rises, a worse epoch says nothing
        if checkpoint:
            _save_checkpoint(checkpoint, net, opt, sched, gen, history, best, epoch, options,
                             len(frame))
        report("epoch", {**dataclasses.asdict(record), "best_epoch": best["epoch"]})
        if stale >= options.patience:
            report("early_stop", {"epoch": epoch})
            break

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
    d = options.to_json()
    d.pop("epochs")  # resuming with more epochs is not allowed by one-cycle, but keep key stable
    d.pop("patience")
    d.pop("device")
    d["targets"] = list(d["targets"])
    return d


def _save_checkpoint(path, net, opt, sched, gen, history, best, epoch, options, n_jets) -> None:
    import torch

    from .atomic import atomic_output

    state = {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
             "gen": gen.get_state(), "history": history, "best_val_loss": best["val_loss"],
             "best_net": best["state"], "best_epoch": best["epoch"], "epoch": epoch,
             "options": _options_key(options), "n_jets": n_jets}
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
        source = open_table(path, **table_options)
        try:
            info = source.info
            if info.units_inferred:
                warn(f"{path}: assuming {info.units} ({info.units_reason})")
            n_file = 0
            for chunk in source.chunks(1 << 20):
                frame = to_model_frame(chunk.columns, info.representation, info.units)
                bad = invalid_jets(frame)
                if bad.any():
                    if not drop_invalid:
                        raise JetzipError(f"{path}: {int(bad.sum())} invalid jets (NaN, inf, E or pt <= 0) "
                                          f"from jet {chunk.first_jet}; pass --drop-invalid to skip them")
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


def train(inputs: str | list[str], output: str, *, options: TrainOptions | None = None,
          resume: bool = False, force: bool = False, max_jets: int | None = None,
          drop_invalid: bool = False, report: Reporter = _quiet,
          warn: Callable[[str], None] = lambda m: None, **table_options: Any) -> Model:
    """Train a model on jet tables and save it to `output` (checkpoint at `output`.ckpt)."""
    from . import __version__
    from .atomic import check_output

    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    options = options or TrainOptions()
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
