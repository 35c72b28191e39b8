"""The seed report's figures: loss curve, distributions, residuals, residual corner plot, latents.

Needs matplotlib (``pip install 'jetzip[plot]'``); uses the mplhep style when installed.
Each ``*_figure`` function returns a matplotlib Figure (so tests can inspect it);
:func:`write_all` saves them as PNG (and PDF) and closes them. Every figure's title names what
it shows (``title``: the files and the codec), and a figure with nothing to show is not
written (:func:`skipped_figures` says which and why).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


LABELS = {
    "E": ("E", "GeV", "rel"), "pt": ("$p_T$", "GeV", "rel"), "m": ("m", "GeV", "rel"),
    "eta": (r"$\eta$", "", "abs"), "phi": (r"$\phi$", "rad", "abs"),
}
ORDER = ["E", "pt", "m", "eta", "phi"]


def require_matplotlib():
    from .extras import matplotlib as require

    matplotlib = require()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    try:
        import mplhep
        plt.style.use(mplhep.style.ROOT)
    except Exception:  # mplhep is optional; any failure just keeps matplotlib's style
        pass
    return plt


def _ordered(d: Mapping) -> list[str]:
    return [k for k in ORDER if k in d]


def _finite_names(res: Mapping[str, np.ndarray]) -> list[str]:
    """The variables with at least one finite residual (a mass residual of massless jets is none)."""
    return [k for k in _ordered(res) if np.isfinite(np.asarray(res[k], float)).any()]


def _suptitle(fig, what: str, title: str | None) -> None:
    fig.suptitle(what if not title else f"{what}\n{title}")


def residual_label(name: str) -> str:
    sym, unit, kind = LABELS.get(name, (name, "", "abs"))
    if kind == "rel":
        return f"({sym}$_{{dec}}$ - {sym}$_{{orig}}$) / {sym}$_{{orig}}$"
    return f"{sym}$_{{dec}}$ - {sym}$_{{orig}}$" + (f" [{unit}]" if unit else "")


def value_label(name: str) -> str:
    sym, unit, _ = LABELS.get(name, (name, "", "abs"))
    return sym + (f" [{unit}]" if unit else "")


def _clip_range(x: np.ndarray, q: float = 0.5) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (-1.0, 1.0)
    lo, hi = np.percentile(x, [q, 100 - q])
    if hi <= lo:
        hi = lo + 1e-6
    return float(lo), float(hi)


def loss_figure(history: Sequence[Mapping], title: str | None = None):
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="training")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weighted MSE loss (normalized units)")
    ax.legend()
    ax.set_title("training loss" if not title else f"training loss\n{title}", fontsize=9)
    return fig


def distributions_figure(original: Mapping[str, np.ndarray], decoded: Mapping[str, np.ndarray],
                         title: str | None = None):
    plt = require_matplotlib()
    names = _ordered(original)
    fig, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names), 4.6), sharex="col",
                             gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True, squeeze=False)
    for i, k in enumerate(names):
        o, d = np.asarray(original[k], float), np.asarray(decoded[k], float)
        log = k in ("E", "pt") and np.all(o[np.isfinite(o)] > 0)
        lo, hi = _clip_range(o, 0.05)
        bins = np.geomspace(max(lo, 1e-3), hi, 60) if log else np.linspace(lo, hi, 60)
        ho, _ = np.histogram(o, bins)
        hd, _ = np.histogram(d, bins)
        top, bottom = axes[0, i], axes[1, i]
        top.stairs(ho, bins, label="original", linewidth=1.5)
        top.stairs(hd, bins, label="decoded", linewidth=1.2, linestyle="--")
        top.set_ylabel("jets")
        if log:
            top.set_xscale("log")
            top.set_yscale("log")
        top.legend(fontsize=8)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ho > 0, hd / ho, np.nan)
        bottom.stairs(ratio, bins)
        bottom.axhline(1, color="grey", linewidth=0.8)
        bottom.set_ylim(0.8, 1.2)
        bottom.set_ylabel("dec / orig")
        bottom.set_xlabel(value_label(k))
    _suptitle(fig, "original and decoded distributions", title)
    return fig


def residuals_figure(res: Mapping[str, np.ndarray], title: str | None = None):
    plt = require_matplotlib()
    names = _finite_names(res)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), constrained_layout=True,
                             squeeze=False)
    for ax, k in zip(axes[0], names):
        r = np.asarray(res[k], float)
        r = r[np.isfinite(r)]
        lo, hi = _clip_range(r, 0.5)
        ax.hist(r, bins=np.linspace(lo, hi, 80), histtype="step", linewidth=1.4,
                label=f"mean {r.mean():.2e}\nstd {r.std():.2e}" if r.size else "no jets")
        ax.set_yscale("log")
        ax.set_xlabel(residual_label(k))
        ax.set_ylabel("jets")
        ax.legend(fontsize=8)
    _suptitle(fig, "residuals", title)
    return fig


def corner_figure(res: Mapping[str, np.ndarray], max_points: int = 20000, title: str | None = None):
    """Residual histograms on the diagonal, 2D histograms of each pair below, jets beyond 1 sigma
    drawn as points, each panel's background coloured by the pair's correlation coefficient."""
    plt = require_matplotlib()
    from matplotlib import cm, colors
    from matplotlib.ticker import MaxNLocator

    names = _finite_names(res)
    n = len(names)
    data = {k: np.asarray(res[k], float) for k in names}
    ok = np.all([np.isfinite(data[k]) for k in names], axis=0) if names else np.zeros(0, bool)
    data = {k: v[ok] for k, v in data.items()}
    ranges = {k: _clip_range(data[k], 1.0) for k in names}
    corr = np.eye(n)
    if ok.sum() > 1:
        with np.errstate(invalid="ignore", divide="ignore"):  # a residual that is 0 everywhere
            corr = np.nan_to_num(np.corrcoef(np.vstack([data[k] for k in names])))
    norm = colors.Normalize(-1, 1)
    cmap = cm.get_cmap("RdBu_r") if hasattr(cm, "get_cmap") else plt.get_cmap("RdBu_r")
    fig, axes = plt.subplots(n, n, figsize=(2.4 * n + 1, 2.4 * n), squeeze=False)
    fig.subplots_adjust(wspace=0.08, hspace=0.08, right=0.86)
    sig = {k: data[k].std() for k in names}
    mean = {k: data[k].mean() for k in names}
    rng = np.random.default_rng(0)
    for i, ki in enumerate(names):
        for j, kj in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                lo, hi = ranges[ki]
                ax.hist(data[ki], bins=np.linspace(lo, hi, 60), histtype="step", color="k")
                ax.set_yticks([])
            else:
                xlo, xhi = ranges[kj]
                ylo, yhi = ranges[ki]
                ax.set_facecolor(cmap(norm(corr[i, j])))
                ax.hist2d(data[kj], data[ki], bins=[np.linspace(xlo, xhi, 50), np.linspace(ylo, yhi, 50)],
                          cmin=1, cmap="Greys", norm=colors.LogNorm())
                out = (np.abs(data[kj] - mean[kj]) > sig[kj]) | (np.abs(data[ki] - mean[ki]) > sig[ki])
                idx = np.flatnonzero(out)
                if idx.size > max_points:
                    idx = rng.choice(idx, max_points, replace=False)
                ax.scatter(data[kj][idx], data[ki][idx], s=0.5, color="k", alpha=0.3, rasterized=True)
                ax.set_xlim(xlo, xhi)
                ax.set_ylim(ylo, yhi)
                ax.text(0.04, 0.88, f"r = {corr[i, j]:+.2f}", transform=ax.transAxes, fontsize=7,
                        bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1})
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3), useMathText=True)
            ax.xaxis.get_offset_text().set_fontsize(6)
            if i != j:
                ax.yaxis.set_major_locator(MaxNLocator(3))
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3), useMathText=True)
                ax.yaxis.get_offset_text().set_fontsize(6)
            if i == n - 1:
                ax.set_xlabel(residual_label(kj), fontsize=8)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(residual_label(ki), fontsize=8)
            elif j > 0 or i == 0:
                ax.set_yticklabels([]) if i != j else None
            ax.tick_params(labelsize=6)
    cax = fig.add_axes([0.89, 0.15, 0.025, 0.7])
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, label="correlation coefficient")
    _suptitle(fig, "residual correlations (points: jets beyond 1 sigma)", title)
    fig.corner_pairs = [(names[i], names[j]) for i in range(n) for j in range(i)]
    return fig


def latent_figure(latents: np.ndarray, title: str | None = None):
    plt = require_matplotlib()
    d = latents.shape[1] if latents.ndim == 2 else 0
    fig, axes = plt.subplots(d, d, figsize=(2.6 * d, 2.6 * d), constrained_layout=True, squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            lo_i, hi_i = _clip_range(latents[:, i], 0.1)
            if j > i:
                ax.set_visible(False)
            elif i == j:
                ax.hist(latents[:, i], bins=np.linspace(lo_i, hi_i, 80), histtype="step", color="k")
                ax.set_yticks([])
            else:
                lo_j, hi_j = _clip_range(latents[:, j], 0.1)
                ax.hist2d(latents[:, j], latents[:, i], bins=[np.linspace(lo_j, hi_j, 60),
                                                              np.linspace(lo_i, hi_i, 60)], cmin=1)
            if i == d - 1:
                ax.set_xlabel(f"latent $z_{j}$ (pre-tanh)")
            if j == 0 and i > 0:
                ax.set_ylabel(f"latent $z_{i}$")
    _suptitle(fig, "latent space", title)
    return fig


def skipped_figures(original: Mapping[str, np.ndarray], res: Mapping[str, np.ndarray], latents: np.ndarray,
                    history: Sequence[Mapping]) -> dict[str, str]:
    """The figures :func:`write_all` does not draw, each with the reason: nothing to show."""
    out = {}
    if not history:
        out["loss"] = "no training history (pass --model with the model file)"
    n = len(next(iter(original.values()))) if original else 0
    if n == 0:
        for name in ("distributions", "residuals", "corner"):
            out[name] = "no jets"
    else:
        names = _finite_names(res)
        if not names:
            out["residuals"] = "no finite residuals"
        ok = np.all([np.isfinite(np.asarray(res[k], float)) for k in names], axis=0) if names else np.zeros(0, bool)
        if len(names) < 2 or ok.sum() < 2:
            out["corner"] = "fewer than two variables or two jets with every residual defined"
    if latents.ndim != 2 or latents.shape[0] == 0 or latents.shape[1] == 0:
        out["latent"] = "the codec stores no latents"
    return out


def write_all(folder: str | os.PathLike, original, decoded, res, latents: np.ndarray,
              history: Sequence[Mapping], pdf: bool = False, title: str | None = None) -> dict[str, list[str]]:
    """Write every figure that has something to show into `folder`, each titled with `title`
    (the files and the codec); returns {figure name: [paths]} (see :func:`skipped_figures`
    for the others)."""
    plt = require_matplotlib()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    skip = skipped_figures(original, res, latents, history)
    makers = {"loss": lambda: loss_figure(history, title),
              "distributions": lambda: distributions_figure(original, decoded, title),
              "residuals": lambda: residuals_figure(res, title),
              "corner": lambda: corner_figure(res, title=title),
              "latent": lambda: latent_figure(latents, title)}
    written: dict[str, list[str]] = {}
    for name, make in makers.items():
        if name in skip:
            continue
        fig = make()
        paths = [out / f"{name}.png"] + ([out / f"{name}.pdf"] if pdf else [])
        for p in paths:
            fig.savefig(p, dpi=110)
        plt.close(fig)
        written[name] = [str(p) for p in paths]
    return written


def plot_loss_curve(history: Sequence[Mapping], path: str) -> str | None:
    """Save the loss curve beside a trained model; ImportError without matplotlib."""
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("matplotlib")
    if not history:
        return None
    plt = require_matplotlib()
    fig = loss_figure(history)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
