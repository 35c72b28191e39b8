"""The latent codec is never silently wrong: jets the network cannot reproduce within the
tolerance are stored verbatim and come back bit for bit; decoded NaN is an error."""
from __future__ import annotations

import numpy as np
import pytest

import jetzip
from jetzip.codecs.latent import LatentCodec, parse_tolerance
from jetzip.errors import FormatError, InputError
from jetzip.features import to_model_frame
from jetzip.training import reconstruct

import jetfactory


def _columns(n: int, seed: int) -> dict[str, np.ndarray]:
    j = jetfactory.jets(n, seed)
    return {"pt": j["pt"], "eta": j["eta"], "phi": j["phi"], "m": j["m"]}


@pytest.mark.parametrize("model_name", ["small", "shipped"])
def test_jets_beyond_the_tolerance_are_stored_verbatim(model_name, small_model):
    from conftest import SHIPPED_MODEL
    from jetzip.model import load_model

    model = small_model if model_name == "small" else load_model(SHIPPED_MODEL)
    cols = _columns(4000, 11)
    cols["pt"][5] = 9000.0  # far outside any training range
    cols["eta"][6] = 4.99
    codec = LatentCodec(model, "PtEtaPhiM", "GeV", device="cpu")
    payload = codec.encode(cols, None)
    dec = codec.decode(payload, len(cols["pt"]), None)
    _, index, _ = codec.split(payload, len(cols["pt"]))
    stored = np.zeros(len(cols["pt"]), bool)
    stored[index] = True
    assert codec.exact == len(index) > 0
    # verbatim jets: the original values exactly
    for r in ("pt", "eta", "phi", "m"):
        np.testing.assert_array_equal(dec[r][stored].astype(np.float32), cols[r][stored])
    # every other jet within the tolerance
    tol = parse_tolerance(None)
    assert (np.abs(dec["pt"][~stored] / cols["pt"][~stored] - 1) <= tol["pt"]).all()
    assert (np.abs(dec["eta"][~stored] - cols["eta"][~stored]) <= tol["eta"]).all()
    # the network's own reconstruction is what the other jets get
    want = reconstruct(model, to_model_frame(cols, "PtEtaPhiM"))[~stored]
    np.testing.assert_allclose(to_model_frame(dec, "PtEtaPhiM")[~stored][:, 1], want[:, 1], rtol=2e-5)
    if model_name == "shipped":  # a good model stores few jets verbatim
        assert stored.mean() < 0.01
        assert stored[5]


def test_compress_reports_and_warns_about_verbatim_jets(tmp_path, small_model_path):
    src = tmp_path / "nano.root"
    jetfactory.write_nanoaod(src, n_events=200, seed=2)
    warnings: list[str] = []
    rep = jetzip.compress(src, tmp_path / "a.aez", model=small_model_path, warn=warnings.append)
    assert rep["exact_jets"] > 0
    assert any("stored exactly" in w for w in warnings)
    assert any("mass is not usable" in w for w in warnings)
    loose = jetzip.compress(src, tmp_path / "b.aez", model=small_model_path, latent_tolerance="pt=1,eta=1,phi=1")
    assert loose["exact_jets"] == 0 and loose["bytes"] < rep["bytes"]
    ev = jetzip.evaluate(src, tmp_path / "a.aez")
    assert ev["residuals"]["pt"]["max_abs"] <= 5e-3 and ev["residuals"]["eta"]["max_abs"] <= 5e-3


@pytest.mark.parametrize("spec, words", [("pt=x", "expected a number"), ("rapidity=1", "unknown column"),
                                          ("0", "positive")])
def test_bad_tolerances(spec, words):
    with pytest.raises(InputError, match=words):
        parse_tolerance(spec)


def test_decoded_nan_is_an_error(small_model):
    cols = _columns(100, 3)
    codec = LatentCodec(small_model, "PtEtaPhiM", "GeV", device="cpu", tolerance={"pt": 1, "eta": 1, "phi": 1})
    payload = bytearray(codec.encode(cols, None))
    lat = np.frombuffer(payload, "<f4", 300, 8).copy()
    lat[:3] = np.nan
    payload[8:8 + 1200] = lat.tobytes()
    with pytest.raises(FormatError, match="NaN or inf"):
        codec.decode(bytes(payload), 100, None)
