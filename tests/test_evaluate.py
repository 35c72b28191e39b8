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
    """nano_dy.root has Runs and other trees (an XTRA record): evaluate reads the chunks twice
    (bytes, then values) and must not take the second pass for a second XTRA record."""
    out = tmp_path / "b.aez"
    jetzip.compress(nano_dy, out, error_bound="1e-3")
    ev = jetzip.evaluate(nano_dy, out)
    assert ev["all_within_bounds"] and ev["n_jets"] == 188
    from jetzip.aez import open_aez

    with open_aez(out) as aez:
        first = [len(c.payload) for c in aez.chunks()]
        assert [len(c.payload) for c in aez.chunks()] == first and aez.extras
