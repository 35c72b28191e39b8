"""Event structure of a chunk and the learned entropy model's integer features (numpy).

The compiled coder (:mod:`.kernels`) computes the same features jet by jet; this module is the
reference it is tested against, and what training (:mod:`jetzip.context_training`) and the
version 1 and 2 decoder use.
"""
from __future__ import annotations

import numpy as np

from ...entropy import context as ctxm
from ...entropy.context import ContextModel
from .params import LOG_UNITS

POSITIONS = 3  # position classes of the static streams: first jet, second jet, later jets
MAX_UNIFORM = 1 << 24  # a learned bucket's widest offset


def events(counts: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per jet: (index of its event's first jet, position in the event, jets in the event), int64;
    flat tables (`counts` None): every jet is first, and the jet count is 0 (no events)."""
    if counts is None:
        return np.arange(n, dtype=np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    c = counts.astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(c)[:-1]]) if len(c) else np.zeros(0, np.int64)
    lead = np.repeat(starts, c)
    return lead, np.arange(n, dtype=np.int64) - lead, np.repeat(c, c)


class Features:
    """The learned models' integer features of a chunk, from integer symbols only
    (``floor(q * (step * 64))``: one IEEE multiplication, the same on every machine).

    Args:
        counts: per-event jet counts, or None for a flat table.
        n: jets in the chunk.
        steps: (s_pt, s_eta, s_phi, s_4) of the chunk.
        units: the table's energy units.
    """

    def __init__(self, counts: np.ndarray | None, n: int, steps: tuple[float, float, float, float],
                 units: str) -> None:
        self.lead, self.posx, nj = events(counts, n)  # 0 jets: a flat table, no events
        self.pos = np.minimum(self.posx, ctxm.MAX_COUNT).astype(np.float64)
        self.nj = np.minimum(nj, ctxm.MAX_COUNT).astype(np.float64)
        self.steps = steps
        self.units = units
        self.unit_fixed = float(ctxm.LOG_UNITS_FIXED.get(units, 0))

    def rounds(self) -> list[np.ndarray]:
        """Indices of the second jets of all events, then the third jets, ... (the order the
        version 2 decoder reads the learned pt drops in)."""
        later = np.flatnonzero(self.posx > 0)
        if not len(later):
            return []
        p = self.posx[later]
        order = np.argsort(p, kind="stable")
        return np.split(later[order], np.cumsum(np.bincount(p)[1:])[:-1])

    def log_pt(self, q: np.ndarray) -> np.ndarray:
        """``floor(q_pt * (s_pt * 64))`` in GeV (minus round(64 log(unit / GeV)))."""
        return np.floor(q.astype(np.float64) * (self.steps[0] * ctxm.FIXED)) - self.unit_fixed

    def features(self, name: str, idx: np.ndarray, q_pt: np.ndarray, q_eta: np.ndarray | None = None) -> np.ndarray:
        """(len(idx), F) integer-valued float64 features of stream `name` (see ``context.STREAMS``)
        for the jets `idx`."""
        pos, nj = self.pos[idx], self.nj[idx]
        if name == "pt_first":
            cols = [nj]
        elif name == "pt_drop":
            cols = [pos, nj, self.log_pt(q_pt[idx - 1]), self.log_pt(q_pt[self.lead[idx]])]
        elif name == "eta":
            cols = [self.log_pt(q_pt[idx]), pos, nj]
        elif name == "phi_rel":
            lp = self.log_pt(q_pt[idx])
            cols = [lp, self.log_pt(q_pt[self.lead[idx]]) - lp, pos, nj]
        else:
            assert q_eta is not None
            cols = [self.log_pt(q_pt[idx]),
                    np.floor(np.abs(q_eta[idx]).astype(np.float64) * (self.steps[1] * ctxm.FIXED)), pos, nj]
        return np.stack(cols, axis=1) if len(idx) else np.zeros((0, len(cols)))

    def thresholds(self, name: str, model: ContextModel | None) -> np.ndarray | None:
        """Bucket starts on the integer symbols of stream `name`, or None without a model for it."""
        return stream_thresholds(name, model, self.steps, self.units)


def stream_thresholds(name: str, model: ContextModel | None, steps: tuple[float, float, float, float],
                      units: str) -> np.ndarray | None:
    """Bucket starts of learned stream `name` on its integer symbols at `steps` (the model's
    edges are physical: log pt drop, eta, phi, log of the 4th column over pt), or None."""
    if model is None or name not in model.streams:
        return None
    step = steps[{"pt_first": 0, "pt_drop": 0, "eta": 1, "phi_rel": 2}.get(name, 3)]
    offset = LOG_UNITS.get(units, 0.0) if name == "pt_first" else 0.0
    return model.streams[name].thresholds(step, offset)


def usable_thresholds(thr: np.ndarray | None) -> bool:
    """Thresholds a learned stream can code with: every bucket narrower than MAX_UNIFORM and
    one holding a symbol at least (at coarse steps, narrow buckets hold none)."""
    return thr is not None and int(np.diff(thr).max(initial=0)) < MAX_UNIFORM and bool((np.diff(thr) > 0).any())
