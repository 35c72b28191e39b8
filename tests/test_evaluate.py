"""jetzip evaluate: statistics against a direct numpy computation, and the figures."""
from __future__ import annotations

import json

import numpy as np
import awkward as ak
import pytest

import jetzip
from jetzip.residuals import residuals, summarize

import jetfactory
from conftest import invoke


def test_phi_residual_wraps_around():
    r = residuals({"phi": np.array([np.pi - 1e-4, -np.pi + 1e-4, 0.5])},
                  {"phi": np.array([-np.pi + 1e-4, np.pi - 1e-4, 0.5 + 3e-4])})
    np.testing.assert_allclose(r["phi"], [2e-4, -2e-4, 3e-4], atol=1e-12)


def test_relative_and_absolute_conventions():
    o = {"E": np.array([100.0, 50.0]), "pt": np.array([10.0, 20.0]), "eta": np.array([1.0, -2.0]),
         "m": np.array([0.0, 5.0])}
    d = {"E": np.array([101.0, 49.0]), "pt": np.array([10.1, 20.0]), "eta": np.array([1.01, -2.02]),
         "m": np.array([0.3, 5.5])}
    r = residuals(o, d)
    np.testing.assert_allclose(r["E"], [0.01, -0.02])
    np.testing.assert_allclose(r["pt"], [0.01, 0.0], atol=1e-15)
    np.testing.assert_allclose(r["eta"], [0.01, -0.02], atol=1e-12)
    assert np.isnan(r["m"][0]) and r["m"][1] == pytest.approx(0.1)  # undefined below 1 GeV


def test_summary_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_t(3, 10_000) * 1e-3
    s = summarize(x)
    assert s["mean"] == pytest.approx(x.mean())
    assert s["std"] == pytest.approx(x.std())
    assert s["median"] == pytest.approx(np.median(x))
    assert s["p1"] == pytest.approx(np.percentile(x, 1))
    assert s["p99"] == pytest.approx(np.percentile(x, 99))
    assert s["p99_abs"] == pytest.approx(np.percentile(np.abs(x), 99))
    assert s["max_abs"] == pytest.approx(np.abs(x).max())
    for k in (1, 2, 3):
        assert s[f"frac_beyond_{k}sigma"] == pytest.approx(np.mean(np.abs(x - x.mean()) > k * x.std()))


def test_evaluate_matches_direct_computation(tmp_path, small_model_path):
    """evaluate() on a file equals residuals computed by hand from the decoded table."""
    import h5py
    src = tmp_path / "flat.h5"
    j = jetfactory.jets(3000, seed=17)
    j["phi"][:5] = np.pi - 1e-5  # jets right at the wrap-around
    cols = {"E": jetfactory.energy(j["pt"], j["eta"], j["m"]), "pt": j["pt"], "eta": j["eta"], "phi": j["phi"]}
    jetfactory.write_hdf5_columns(src, cols)
    jetzip.compress(src, tmp_path / "f.aez", model=small_model_path)
    rep = jetzip.evaluate(src, tmp_path / "f.aez")
    jetzip.decompress(tmp_path / "f.aez", tmp_path / "back.h5")
    with h5py.File(tmp_path / "back.h5") as f:
        dec = {k: f[k][...].astype(np.float64) for k in cols}
    o = {k: v.astype(np.float64) for k, v in cols.items()}
    direct = {"E": dec["E"] / o["E"] - 1, "pt": dec["pt"] / o["pt"] - 1, "eta": dec["eta"] - o["eta"],
              "phi": (dec["phi"] - o["phi"] + np.pi) % (2 * np.pi) - np.pi}
    assert rep["n_jets"] == 3000
    for k, r in direct.items():
        got = rep["residuals"][k]
        # decoded values pass through float32 on disk; the statistics agree to that precision
        assert got["std"] == pytest.approx(r.std(), rel=1e-3, abs=1e-6)
        assert got["max_abs"] == pytest.approx(np.abs(r).max(), rel=1e-3, abs=1e-6)
    assert rep["residuals"]["phi"]["max_abs"] < 1.0  # no 2 pi jumps
    size = (tmp_path / "f.aez").stat().st_size
    assert rep["bytes_per_jet"] == pytest.approx(size / 3000)
    assert rep["ratio_to_float32"] == pytest.approx(size / 3000 / 16)


def test_evaluate_cli_json_and_mismatch(tmp_path, nano_file, small_model_path):
    path, data = nano_file
    aez = tmp_path / "n.aez"
    jetzip.compress(path, aez, model=small_model_path)
    r = invoke("evaluate", path, aez, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert set(rep["residuals"]) == {"E", "pt", "m", "eta", "phi"}
    assert rep["n_jets"] == int(data["counts"].sum())
    other = tmp_path / "other.root"
    jetfactory.write_nanoaod(other, n_events=100, seed=99)
    r = invoke("evaluate", other, aez)
    assert r.returncode == 1 and b"not the same table" in r.stderr


def test_figures_are_written_and_corner_has_every_pair(tmp_path, small_model_path, nano_file):
    pytest.importorskip("matplotlib")
    from jetzip.plots import corner_figure
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "n.aez", model=small_model_path)
    rep = jetzip.evaluate(path, tmp_path / "n.aez", model=small_model_path, plots=tmp_path / "figs",
                          pdf=True, return_arrays=True)
    for name in ("loss", "distributions", "residuals", "corner", "latent"):
        for ext in ("png", "pdf"):
            p = tmp_path / "figs" / f"{name}.{ext}"
            assert p.exists() and p.stat().st_size > 1000, p
    res = rep["arrays"]["residuals"]
    fig = corner_figure(res)
    names = ["E", "pt", "m", "eta", "phi"]
    assert fig.corner_pairs == [(names[i], names[j]) for i in range(5) for j in range(i)]
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert len(visible) == 5 * 6 // 2 + 1  # 15 lower-triangle panels and the colour bar
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_plots_without_matplotlib_say_what_to_install(tmp_path, small_model_path, nano_file, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mpl(name, *a, **k):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *a, **k)

    path, _ = nano_file
    jetzip.compress(path, tmp_path / "n.aez", model=small_model_path)
    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(jetzip.JetzipError, match=r"pip install 'jetzip\[plot\]'"):
        jetzip.evaluate(path, tmp_path / "n.aez", plots=tmp_path / "figs")


def test_original_in_another_format_than_the_source(tmp_path, nano_file, small_model_path):
    """The .aez came from an HDF5 copy; the original given is the ROOT file: read it as ROOT."""
    path, data = nano_file
    jetzip.compress(path, tmp_path / "a.aez", model=small_model_path)
    jetzip.decompress(tmp_path / "a.aez", tmp_path / "copy.h5")
    jetzip.compress(tmp_path / "copy.h5", tmp_path / "b.aez", model=small_model_path)
    r = jetzip.evaluate(path, tmp_path / "b.aez")
    assert r["n_jets"] == int(data["counts"].sum())


def test_max_jets_still_checks_that_the_tables_match(tmp_path, nano_file, small_model_path):
    path, _ = nano_file
    other = tmp_path / "other.root"
    jetfactory.write_nanoaod(other, n_events=300, seed=99)  # other jets, other jets per event
    jetzip.compress(other, tmp_path / "o.aez", model=small_model_path)
    with pytest.raises(jetzip.InputError, match="different jets per event"):
        jetzip.evaluate(path, tmp_path / "o.aez", max_jets=200)


def test_jets_dropped_by_compress_are_dropped_from_the_original(tmp_path, small_model_path):
    cols = jetfactory.jets(500, seed=4)
    cols["pt"][[5, 100, 300]] = -1.0  # invalid: compress --drop-invalid leaves them out
    jetfactory.write_csv(tmp_path / "bad.csv", {"pt": cols["pt"], "eta": cols["eta"],
                                                "phi": cols["phi"], "m": cols["m"]})
    jetzip.compress(tmp_path / "bad.csv", tmp_path / "b.aez", model=small_model_path, drop_invalid=True,
                    units="GeV")
    r = jetzip.evaluate(tmp_path / "bad.csv", tmp_path / "b.aez")
    assert r["n_jets"] == 497
    assert r["residuals"]["pt"]["std"] < 0.2  # aligned jets; misaligned ones would be O(1)
    r = jetzip.evaluate(tmp_path / "bad.csv", tmp_path / "b.aez", max_jets=50)
    assert r["n_jets"] == 50 and r["residuals"]["pt"]["std"] < 0.2


def test_evaluate_reads_the_tree_cycle_and_flat_csv_it_was_given(tmp_path, small_model_path):
    import uproot

    src = tmp_path / "cycles.root"
    old = jetfactory.write_nanoaod(src, n_events=50, seed=1, extra=False)
    with uproot.update(src) as f:  # a second, larger cycle of Events
        t = f.mktree("Events", {f"Jet_{k}": "var * float32" for k in ("pt", "eta", "phi", "mass")},
                     counter_name=lambda _: "nJet")
        new = jetfactory.jets(400, seed=2)
        t.extend({f"Jet_{k}": ak.unflatten(new[kk], np.full(100, 4)) for k, kk in
                  (("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "m"))})
    jetzip.compress(src, tmp_path / "c1.aez", model=small_model_path, tree="Events;1")
    assert jetzip.evaluate(src, tmp_path / "c1.aez")["n_jets"] == int(old["counts"].sum())

    cols = jetfactory.jets(300, seed=5)  # an `event` column that is not ordered: flat only
    jetfactory.write_csv(tmp_path / "f.csv", {"event": np.arange(300)[::-1].copy(), "pt": cols["pt"],
                                              "eta": cols["eta"], "phi": cols["phi"], "m": cols["m"]})
    jetzip.compress(tmp_path / "f.csv", tmp_path / "f.aez", model=small_model_path, preset="flat", units="GeV")
    assert jetzip.evaluate(tmp_path / "f.csv", tmp_path / "f.aez")["n_jets"] == 300


def test_evaluate_cli_on_a_bounded_file_with_baselines(tmp_path, nano_file):
    path, data = nano_file
    aez = tmp_path / "b.aez"
    jetzip.compress(path, aez, error_bound="pt=1e-3,eta=1e-3,phi=1e-3,m=1e-2")
    r = invoke("evaluate", path, aez, "--baselines", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["codec"] == "bounded" and rep["all_within_bounds"] is True
    assert rep["bounds"]["pt"]["max_error"] <= 1e-3 and rep["bounds"]["pt"]["violations"] == 0
    assert rep["baselines"]["quantize+zstd"]["bounded"] is True
    r = invoke("evaluate", path, aez, "--baselines")
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert f"{int(data['counts'].sum())} jets, codec bounded" in text
    assert "every value within its bound" in text and "quantize+zstd" in text and "float16+zstd" in text


def test_evaluate_a_file_with_other_trees(tmp_path, nano_dy):
    """nano_dy.root has a Runs tree beside Events (a second table of the .aez): evaluate reads
    the chunks twice (bytes, then values); both passes see the same chunks."""
    out = tmp_path / "b.aez"
    jetzip.compress(nano_dy, out, error_bound="1e-3")
    ev = jetzip.evaluate(nano_dy, out)
    assert ev["all_within_bounds"] and ev["n_jets"] == 188
    from jetzip.aez import open_aez

    with open_aez(out) as aez:
        first = [len(c.payload) for c in aez.chunks()]
        assert [len(c.payload) for c in aez.chunks()] == first and [t.tree for t in aez.tables] == ["Events", "Runs"]


def test_evaluate_gives_one_float16_figure(tmp_path, nano_file):
    """The "other ways" table and the baselines table run the same float16 baseline
    (issue 20: they printed 7.42 and 6.47 B/jet, zstd level 3 against 19)."""
    import re

    path, _ = nano_file
    aez = tmp_path / "b.aez"
    jetzip.compress(path, aez, error_bound="nanoaod")
    rep = jetzip.evaluate(path, aez, baselines=True)
    assert rep["alternatives"]["float16"]["bytes_per_jet"] == rep["baselines"]["float16+zstd"]["bytes_per_jet"]
    assert rep["alternatives"]["float16"]["zstd_level"] == 19
    text = invoke("evaluate", path, aez, "--baselines").stdout.decode()
    other = re.search(r"float16 cast \+ zstd\s*\S\s*([\d.]+)", text).group(1)
    base = re.search(r"float16\+zstd\s*\S\s*no\s*\S\s*([\d.]+)", text).group(1)
    assert other == base == f"{rep['baselines']['float16+zstd']['bytes_per_jet']:.2f}"


def test_only_bounded_variables_carry_a_bound(tmp_path, nano_file):
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "n.aez", error_bound="nanoaod")
    rep = jetzip.evaluate(path, tmp_path / "n.aez")
    assert rep["variables"] == ["pt", "eta", "phi", "m"]
    assert rep["residual_bounds"]["E"] is None and rep["residual_bounds"]["m"] == 2.0 ** -11
    assert rep["residual_bounds"]["eta"] == 2.0 ** -12
    assert any(n.startswith("E not bounded: computed from the bounded pt, eta, phi, m") for n in rep["notes"])
    assert set(rep["alternatives"]["float16"]["residual_std"]) == {"E", "pt", "m", "eta", "phi"}
    # a table that stores E: E is bounded, nothing unbounded to say
    cols = jetfactory.jets(2000, seed=3)
    flat = {"E": jetfactory.energy(cols["pt"], cols["eta"], cols["m"]), "pt": cols["pt"], "eta": cols["eta"],
            "phi": cols["phi"]}
    jetfactory.write_hdf5_columns(tmp_path / "e.h5", flat)
    jetzip.compress(tmp_path / "e.h5", tmp_path / "e.aez", error_bound="1e-3")
    rep = jetzip.evaluate(tmp_path / "e.h5", tmp_path / "e.aez")
    assert rep["residual_bounds"]["E"] == 1e-3 and not any("not bounded" in n for n in rep["notes"])


def test_an_input_already_at_nanoaod_precision_is_said(tmp_path, nano_file):
    import uproot
    from jetzip.baselines import round_mantissa

    path, data = nano_file
    jetzip.compress(path, tmp_path / "a.aez", error_bound="nanoaod")
    rep = jetzip.evaluate(path, tmp_path / "a.aez")
    assert rep["already_nanoaod"] == [] and not any("NanoAOD" in n for n in rep["notes"])
    c = data["counts"].astype(np.int64)
    rounded = tmp_path / "rounded.root"
    with uproot.recreate(rounded) as f:
        f["Events"] = {f"Jet_{name}": ak.unflatten(round_mantissa(data[key], bits), c)
                       for name, key, bits in (("pt", "pt", 10), ("eta", "eta", 12), ("phi", "phi", 12),
                                               ("mass", "m", 10))}
    jetzip.compress(rounded, tmp_path / "r.aez", error_bound="nanoaod")
    rep = jetzip.evaluate(rounded, tmp_path / "r.aez", baselines=True)
    assert rep["already_nanoaod"] == ["pt", "m", "eta", "phi"]
    assert any("already rounded to NanoAOD's precision" in n and "second time" in n for n in rep["notes"])
    assert max(rep["baselines"]["nanoaod-mantissa+lzma"]["max_error"].values()) == 0.0


def test_figures_name_the_files_and_the_codec_and_none_is_empty(tmp_path, nano_file, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    titles = {}
    real_savefig = Figure.savefig

    def savefig(self, path, *a, **k):
        text = self._suptitle.get_text() if self._suptitle is not None else self.axes[0].get_title()
        titles[str(path)] = text
        return real_savefig(self, path, *a, **k)

    monkeypatch.setattr(Figure, "savefig", savefig)
    path, _ = nano_file
    jetzip.compress(path, tmp_path / "b.aez", error_bound="nanoaod")
    rep = jetzip.evaluate(path, tmp_path / "b.aez", plots=tmp_path / "figs")
    assert set(rep["plots"]) == {"distributions", "residuals", "corner"}
    assert rep["plots_skipped"]["latent"] == "the codec stores no latents" and "loss" in rep["plots_skipped"]
    assert not (tmp_path / "figs" / "latent.png").exists() and not (tmp_path / "figs" / "loss.png").exists()
    assert len(titles) == 3
    for text in titles.values():
        assert "b.aez, codec bounded (" in text and "against nano.root" in text
    for paths in rep["plots"].values():
        assert all((tmp_path / "figs" / p).stat().st_size > 1000 for p in paths)
