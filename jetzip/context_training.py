"""Training the learned entropy model of the bounded codec (``jetzip train --entropy-model``).

From jet tables with events (pt, eta, phi, mass; NanoAOD-like), for each stream of
:data:`jetzip.entropy.context.STREAMS`:

1. quantize the jets the way the codec does, at a fine reference bound (``REFERENCE_BOUND``:
   the features and values are then close to continuous), and take each stream's physical values
   (log pt drop, eta, ...) with the integer features the codec computes (``Features.features``,
   the same function, so training and coding see the same inputs);
2. place ``buckets`` edges at quantiles of the values (0.02 % of each tail escapes);
3. fit a small network (F -> hidden -> buckets + 1, tanh) by cross-entropy with Adam;
4. fold the feature normalization into the first layer and round every weight to the integer
   grids of :mod:`jetzip.entropy.context`; measure the integer model's bits on the
   validation events next to the float network's and the stream's order-0 entropy over the
   same buckets (what a context-free table of those buckets would cost).

E streams are trained from the same jets with E = sqrt(p^2 + m|m|) (the (E, pt, eta, phi)
tables of ATLAS-like files); flat tables (no events) are covered by copies of the jets with
position and jet count 0, the codec's convention for them.
"""
from __future__ import annotations

import datetime
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .codecs.bounded import LOG_UNITS, BoundedCodec, Features, parse_error_bound
from .codecs.bounded.params import phi_limit
from .entropy import context as ctxm
from .errors import JetzipError

REFERENCE_BOUND = 1e-5  # near-continuous values and features
FLAT_FRACTION = 0.25  # share of copies with no event structure (flat tables)
TAIL = 2e-4  # quantile left to the escape bucket at each open end
MIN_SAMPLES = 1000  # a stream with fewer symbols is left to the chunks' own tables
MIN_EVENTS = 100  # the validation split is by event: fewer leave one side empty or meaningless
DEFAULT_MAX_JETS = 2_000_000  # jets read when --max-jets is not given (whole events)


def stream_samples(chunks: list[tuple[dict[str, np.ndarray], np.ndarray]], units: str = "GeV",
                   seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{stream: (values (n,), features (n, F), event id (n,))}`` from (pt, eta, phi, m) chunks
    with their jet counts; the event id lets callers split by event."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {k: [] for k in ctxm.STREAMS}
    event_base = 0
    for columns, counts in chunks:
        n = len(columns["pt"])
        events = event_base + np.repeat(np.arange(len(counts)), counts.astype(np.int64))
        event_base += len(counts)
        pt, eta, m = (np.asarray(columns[k], np.float64) for k in ("pt", "eta", "m"))
        p = pt * np.cosh(eta)
        e_cols = {"E": np.sqrt(np.maximum(p * p + m * np.abs(m), 0.0)), "pt": pt, "eta": eta, "phi": columns["phi"]}
        for rep, cols in (("PtEtaPhiM", columns), ("EPtEtaPhi", e_cols)):
            codec = BoundedCodec(parse_error_bound(REFERENCE_BOUND, rep), rep, units)
            sym, steps, usable, _ = codec.quantize(cols)
            ev = Features(counts, n, steps, units)
            flat = Features(None, n, steps, units)
            few = rng.random(n) < FLAT_FRACTION
            good = usable.copy()
            if sym.m_class is not None:
                good &= sym.m_class < 2
            fourth = codec.fourth
            out[fourth].append(_take(ev, fourth, np.flatnonzero(good), sym.q_4 * steps[3], sym, events))
            out[fourth].append(_take(flat, fourth, np.flatnonzero(good & few), sym.q_4 * steps[3], sym, events))
            if rep != "PtEtaPhiM":
                continue
            lp = sym.q_pt * steps[0] - LOG_UNITS.get(units, 0.0)
            first = np.flatnonzero(usable & (ev.posx == 0))
            out["pt_first"].append(_take(ev, "pt_first", first, lp, sym, events))
            out["pt_first"].append(_take(flat, "pt_first", np.flatnonzero(usable & few), lp, sym, events))
            later = np.flatnonzero(usable & (ev.posx > 0))
            later = later[usable[later - 1] & usable[ev.lead[later]]]
            drop = np.zeros(n)
            drop[later] = (sym.q_pt[later - 1] - sym.q_pt[later]) * steps[0]
            out["pt_drop"].append(_take(ev, "pt_drop", later, drop, sym, events))
            out["eta"].append(_take(ev, "eta", np.flatnonzero(usable), sym.q_eta * steps[1], sym, events))
            out["eta"].append(_take(flat, "eta", np.flatnonzero(usable & few), sym.q_eta * steps[1], sym, events))
            phi_n = 2 * phi_limit(steps[2]) + 1  # the codec's phi range
            rel = np.zeros(n)
            rel[later] = np.mod(sym.q_phi[later] - sym.q_phi[ev.lead[later]], phi_n) * steps[2]
            out["phi_rel"].append(_take(ev, "phi_rel", later, rel, sym, events))
    return {k: tuple(np.concatenate([p[i] for p in v]) for i in range(3))  # type: ignore[misc]
            for k, v in out.items() if v}


def _take(ev: Features, name: str, idx: np.ndarray, values: np.ndarray, sym: Any, events: np.ndarray):
    return values[idx].astype(np.float64), ev.features(name, idx, sym.q_pt, sym.q_eta), events[idx]


def bucket_edges(values: np.ndarray, buckets: int, name: str) -> np.ndarray:
    """``buckets + 1`` increasing edges at quantiles; the pt drop and phi start at 0 exactly."""
    qs = np.quantile(values, np.linspace(TAIL, 1 - TAIL, buckets + 1))
    if name in ("pt_drop", "phi_rel"):
        qs[0] = 0.0
    qs[-1] = np.nextafter(qs[-1], np.inf)
    edges = [float(qs[0])]
    for x in qs[1:]:  # strictly increasing, at least 1e-6 apart
        edges.append(max(float(x), edges[-1] + 1e-6))
    return np.array(edges)


def fit_stream(name: str, values: np.ndarray, feats: np.ndarray, events: np.ndarray, *, buckets: int = 32,
               hidden: int = 16, epochs: int = 6, batch_size: int = 2048, lr: float = 1e-2, seed: int = 0,
               max_samples: int = 2_000_000, val_fraction: float = 0.1,
               report: Callable[[str], None] = lambda m: None) -> tuple[ctxm.StreamModel, dict[str, float]]:
    """Train one stream's network; returns the integer model and its validation figures
    (bits per symbol for the bucket: ``float``, ``integer`` and ``order0``; ``samples``)."""
    import torch

    rng = np.random.default_rng(seed)
    if len(values) > max_samples:
        pick = np.sort(rng.choice(len(values), max_samples, replace=False))
        values, feats, events = values[pick], feats[pick], events[pick]
    val = (events * 2654435761 % 1000) < int(val_fraction * 1000)  # by event, reproducible
    if val.all() or not val.any():  # every sample in one split (few events): the events' order instead
        val = np.arange(len(values)) % 10 == 0
    edges = bucket_edges(values[~val], buckets, name)
    thr_b = np.searchsorted(edges, values, side="right") - 1
    target = np.where((thr_b >= 0) & (thr_b < buckets), thr_b, buckets)
    mu = feats[~val].mean(axis=0)
    sd = np.maximum(feats[~val].std(axis=0), 1.0)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(feats.shape[1], hidden), torch.nn.Tanh(),
                              torch.nn.Linear(hidden, buckets + 1)).double()
    with torch.no_grad():  # start from the order-0 distribution of the buckets
        marginal = np.bincount(target[~val], minlength=buckets + 1) + 0.5
        last = net[2]
        assert isinstance(last, torch.nn.Linear)
        last.bias.copy_(torch.from_numpy(np.log(marginal / marginal.sum())))
        last.weight.mul_(0.1)
    x = torch.from_numpy((feats - mu) / sd)
    y = torch.from_numpy(target.astype(np.int64))
    xt, yt, xv, yv = x[~val], y[~val], x[val], y[val]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * max(1, math.ceil(len(xt) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for a in range(0, len(xt), batch_size):
            i = order[a:a + batch_size]
            loss = torch.nn.functional.cross_entropy(net(xt[i]), yt[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            v = float(torch.nn.functional.cross_entropy(net(xv), yv)) / math.log(2)
        report(f"{name}: epoch {epoch + 1}/{epochs}, validation {v:.4f} bit/symbol (buckets)")
    first, last = net[0], net[2]
    assert isinstance(first, torch.nn.Linear) and isinstance(last, torch.nn.Linear)
    w1 = first.weight.detach().numpy().T / sd[:, None]  # on raw features
    b1 = first.bias.detach().numpy() - mu / sd @ first.weight.detach().numpy().T
    w2 = last.weight.detach().numpy().T
    b2 = last.bias.detach().numpy()
    sm = ctxm.StreamModel(name, edges, np.rint(w1 * (1 << ctxm.W1_SHIFT)),
                          np.rint(b1 * (1 << ctxm.W1_SHIFT)), np.rint(w2 * (1 << ctxm.W2_SHIFT)),
                          np.rint(b2 * ((1 << ctxm.W2_SHIFT) * (1 << ctxm.TANH_BITS))))
    sm.check()
    tanh, exp = ctxm.make_tanh_table().astype(np.float64), ctxm.make_exp_table().astype(np.float64)
    fv, tv = feats[val], target[val].astype(np.int64)
    bits = sum(ctxm.model_bits(sm.frequencies(fv[a:a + 65536], tanh, exp), tv[a:a + 65536],
                               np.ones(len(tv[a:a + 65536]))) for a in range(0, len(fv), 65536))
    hist = np.bincount(target[~val], minlength=buckets + 1) + 0.5
    order0 = float(-np.log2(hist[tv] / hist.sum()).mean())
    return sm, {"float": v, "integer": bits / max(1, len(tv)), "order0": order0, "samples": int(len(values))}


def train_context_model(inputs: list[str], output: str, *, max_jets: int | None = None, buckets: int = 32,
                        hidden: int = 16, epochs: int = 12, seed: int = 0, name: str | None = None,
                        force: bool = False, report: Callable[[str], None] = lambda m: None,
                        **table_options: Any) -> ctxm.ContextModel:
    """Train every stream on (pt, eta, phi, mass) tables with events and write the model file
    (named `name`, default the file's stem, as files coded with it will say).

    Raises:
        JetzipError: inputs without mass or without events, or no jets.
    """
    from .atomic import check_output
    from .tables import open_table
    from .training import file_sha256

    check_output(output, force)
    model_name = name or Path(output).stem
    if not ctxm.NAME_PATTERN.fullmatch(model_name):
        raise JetzipError(f"model name {model_name!r}: use 1-64 letters, digits or _.+- (it is the file name "
                          "without its extension unless given)")
    if max_jets is None:
        max_jets = DEFAULT_MAX_JETS  # a bounded sample: memory and time do not grow with the inputs
    chunks, files, total, units, n_events = [], [], 0, "GeV", 0
    for path in inputs:
        source = open_table(path, **{"drop_branches": ("*",), **table_options})
        try:
            info = source.info
            if info.representation != "PtEtaPhiM":
                raise JetzipError(f"{path}: the entropy model trains on (pt, eta, phi, mass) tables; this one "
                                  f"stores {info.representation}")
            units = info.units
            for chunk in source.chunks(1 << 20):
                if chunk.counts is None:
                    raise JetzipError(f"{path}: the entropy model needs events (a jagged collection or an "
                                      "event column); this table has one jet per row")
                columns, counts = chunk.columns, chunk.counts
                if max_jets is not None:  # whole events, up to max_jets in all
                    keep = int(np.searchsorted(np.cumsum(counts, dtype=np.int64), max_jets - total, side="right"))
                    counts = counts[:keep]
                    columns = {k: v[:int(np.sum(counts, dtype=np.int64))] for k, v in columns.items()}
                chunks.append((columns, counts))
                total += len(columns["pt"])
                n_events += int(np.count_nonzero(counts))
                if max_jets is not None and total >= max_jets:
                    break
        finally:
            source.close()
        files.append({"file": os.path.basename(path), "sha256": file_sha256(path)})
        if max_jets is not None and total >= max_jets:
            break
    if total == 0:
        raise JetzipError("no jets to train on")
    if n_events < MIN_EVENTS:
        raise JetzipError(f"the entropy model learns from events and holds some back to validate: {n_events} "
                          f"event(s) with jets is too few (give at least {MIN_EVENTS})")
    samples = stream_samples(chunks, units, seed)
    streams, figures = {}, {}
    for stream, (values, feats, events) in samples.items():
        if len(values) < MIN_SAMPLES:
            report(f"{stream}: {len(values)} symbols, too few to model (files code it with their own tables)")
            continue
        sm, fig = fit_stream(stream, values, feats, events, buckets=buckets, hidden=hidden, epochs=epochs,
                             seed=seed, report=report)
        streams[stream] = sm
        figures[stream] = fig
        report(f"{stream}: {fig['samples']} symbols; validation bits/symbol over the buckets: order-0 "
               f"{fig['order0']:.3f}, network {fig['float']:.3f}, integer network {fig['integer']:.3f}")
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if not streams:
        raise JetzipError(f"no stream has {MIN_SAMPLES} symbols to learn from: give more jets, in events")
    meta = {"name": model_name, "created": created,
            "trained_on": files, "n_jets": total, "reference_bound": REFERENCE_BOUND, "buckets": buckets,
            "hidden": hidden, "epochs": epochs, "seed": seed, "features": {k: list(v) for k, v in ctxm.STREAMS.items()},
            "validation_bits_per_symbol": figures}
    model = ctxm.ContextModel(streams, ctxm.make_tanh_table(), ctxm.make_exp_table(), meta)
    data = model.to_bytes()
    model = ctxm.ContextModel.from_bytes(data)
    model.save(output, force)
    return model
