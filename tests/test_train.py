"""jetzip train: learning, checkpoints and resume, determinism, the model file it writes."""
from __future__ import annotations

import json

import numpy as np
import pytest

import jetzip
from jetzip.model import load_model
from jetzip.training import TrainOptions, train_frames

import jetfactory
from conftest import SMALL_MODEL, invoke

OPTS = dict(arch="24,24,12:3", epochs=4, batch_size=256, lr_max=5e-3, seed=7, patience=10)


@pytest.fixture(scope="module")
def frame():
    return jetfactory.model_frame(12_000, seed=31)


def test_short_training_lowers_validation_loss(frame):
    model = train_frames(frame, TrainOptions(**OPTS))
    losses = [h["val_loss"] for h in model.history]
    assert len(losses) == 4
    assert min(losses[1:]) < losses[0] * 0.5
    assert model.metadata["best_val_loss"] == min(losses)
    assert set(model.metadata["val_residuals"]) == {"E", "pt", "eta", "phi"}
    assert model.metadata["training_ranges"]["pt"][0] >= 5.0


def test_same_seed_same_weights_on_cpu(frame):
    a = train_frames(frame, TrainOptions(**{**OPTS, "epochs": 2}))
    b = train_frames(frame, TrainOptions(**{**OPTS, "epochs": 2}))
    c = train_frames(frame, TrainOptions(**{**OPTS, "epochs": 2, "seed": 8}))
    assert a.weights_sha256 == b.weights_sha256
    assert a.weights_sha256 != c.weights_sha256


def test_resume_after_interruption_gives_the_same_model(frame, tmp_path):
    ckpt = str(tmp_path / "m.jzm.ckpt")
    full = train_frames(frame, TrainOptions(**OPTS))

    def stop_after_epoch_1(event, info):
        if event == "epoch" and info["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_frames(frame, TrainOptions(**OPTS), checkpoint=ckpt, report=stop_after_epoch_1)
    events = []
    resumed = train_frames(frame, TrainOptions(**OPTS), checkpoint=ckpt, resume=True,
                           report=lambda e, i: events.append((e, i)))
    assert ("resumed", {"epoch": 2}) in events
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2, 3]
    assert resumed.weights_sha256 == full.weights_sha256


def test_resume_refuses_other_options_epochs_or_data(frame, tmp_path):
    ckpt = str(tmp_path / "m.jzm.ckpt")
    train_frames(frame, TrainOptions(**{**OPTS, "epochs": 1}), checkpoint=ckpt)
    with pytest.raises(jetzip.JetzipError, match=r"other lr_max \(0.005, now 0.001\)"):
        train_frames(frame, TrainOptions(**{**OPTS, "epochs": 1, "lr_max": 1e-3}), checkpoint=ckpt, resume=True)
    with pytest.raises(jetzip.JetzipError, match=r"other epochs \(1, now 3\)"):  # one-cycle is fixed
        train_frames(frame, TrainOptions(**{**OPTS, "epochs": 3}), checkpoint=ckpt, resume=True)
    other = frame.copy()
    other[:, :2] *= 1000  # the same jets in MeV: other training jets
    with pytest.raises(jetzip.JetzipError, match="other training jets"):
        train_frames(other, TrainOptions(**{**OPTS, "epochs": 1}), checkpoint=ckpt, resume=True)


def test_resume_after_the_end_or_an_early_stop_rebuilds_the_same_model(frame, tmp_path):
    ckpt = str(tmp_path / "m.jzm.ckpt")
    opts = TrainOptions(**{**OPTS, "epochs": 12, "patience": 1, "lr_max": 3.0})  # stops early
    events = []
    first = train_frames(frame, opts, checkpoint=ckpt, report=lambda e, i: events.append(e))
    assert "early_stop" in events and len(first.history) < 12
    again = train_frames(frame, opts, checkpoint=ckpt, resume=True)
    assert again.weights_sha256 == first.weights_sha256 and len(again.history) == len(first.history)


def test_damaged_checkpoint_is_a_format_error(frame, tmp_path):
    ckpt = tmp_path / "m.jzm.ckpt"
    for content in (b"", b"not a checkpoint at all" * 10):
        ckpt.write_bytes(content)
        with pytest.raises(jetzip.FormatError, match="not a jetzip checkpoint"):
            train_frames(frame, TrainOptions(**OPTS), checkpoint=str(ckpt), resume=True)


def test_diverging_training_is_a_clear_error(frame):
    with pytest.raises(jetzip.JetzipError, match="training diverged"):
        train_frames(frame, TrainOptions(**{**OPTS, "epochs": 2, "lr_max": 1e30}))


@pytest.mark.parametrize("bad, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"batch_size": -5}, "batch_size must be a positive integer"),
    ({"lr_max": 0}, "lr_max must be a finite positive number"),
    ({"targets": (1, 1, 1)}, "targets must be 4 finite positive numbers"),
    ({"targets": (float("nan"), 1, 1, 1)}, "targets must be 4 finite positive numbers"),
    ({"normalization": "log"}, "unknown normalization 'log'"),
    ({"arch": "4,4,4,4,4,4,4,4,4:3"}, "outside what model files hold"),
    ({"arch": "5000:3"}, "outside what model files hold"),
    ({"arch": "16,-4:3"}, "unknown architecture"),
    ({"val_fraction": 1.0}, "val_fraction must be between 0 and 1"),
])
def test_options_are_checked_before_reading_data(bad, message, tmp_path):
    with pytest.raises(jetzip.JetzipError, match=message):
        jetzip.train(tmp_path / "does-not-exist.root", tmp_path / "m.jzm", **bad)


def test_train_takes_options_as_keywords_or_a_dict(tmp_path, nano_file):
    path, _ = nano_file
    a = jetzip.train(path, tmp_path / "a.jzm", epochs=1, arch="8:3", batch_size=64, max_jets=500)
    b = jetzip.train(path, tmp_path / "b.jzm", options={"epochs": 1, "arch": "8:3", "batch_size": 64},
                     max_jets=500)
    assert a.weights_sha256 == b.weights_sha256 and a.arch.hidden == (8,)
    assert jetzip.TrainOptions is TrainOptions
    with pytest.raises(jetzip.JetzipError, match="unknown argument"):
        jetzip.train(path, tmp_path / "c.jzm", epoch=1)
    with pytest.raises(jetzip.JetzipError, match="standard output"):
        jetzip.train(path, "-", epochs=1)


def test_train_refuses_jets_compress_refuses(tmp_path):
    (tmp_path / "elt.csv").write_text("E,pt,eta,phi\n5,10,0.1,0.2\n100,50,0.1,0.2\n")
    with pytest.raises(jetzip.JetzipError, match=r"1 with E < pt.*line 2"):
        jetzip.train(tmp_path / "elt.csv", tmp_path / "m.jzm", epochs=1, arch="8:3", units="GeV")


def test_cli_train_writes_a_loadable_model_with_history(tmp_path):
    src = tmp_path / "jets.root"
    jetfactory.write_nanoaod(src, n_events=300, seed=4)
    out = tmp_path / "m.jzm"
    r = invoke("train", src, "-o", out, "--arch", "AE_3D_50", "--epochs", "3",
               "--batch-size", "512", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr.decode()
    model = load_model(out)
    assert model.arch.name == "AE_3D_50"
    assert len(model.history) == 3
    meta = model.metadata
    assert meta["data"][0]["file"] == "jets.root" and len(meta["data"][0]["sha256"]) == 64
    assert meta["options"]["epochs"] == 3 and meta["jetzip_version"] == jetzip.__version__
    assert meta["n_jets"] == meta["n_train"] + meta["n_val"]
    summary = json.loads(r.stdout)
    assert summary["weights_sha256"] == model.weights_sha256
    err = r.stderr.decode()
    assert "epoch   2" in err and "validation residuals" in err
    assert (tmp_path / "m_loss.png").exists()
    # an existing model is not overwritten without --force
    r = invoke("train", src, "-o", out, "--epochs", "1")
    assert r.returncode == 1 and b"exists" in r.stderr


def test_cli_train_rejects_bad_arch(tmp_path):
    src = tmp_path / "jets.root"
    jetfactory.write_nanoaod(src, n_events=50, seed=4)
    r = invoke("train", src, "-o", tmp_path / "m.jzm", "--arch", "AE_9D_7")
    assert r.returncode == 1 and b"unknown architecture" in r.stderr


def test_architecture_family():
    from jetzip.model import Architecture, build_network
    arch = Architecture.parse("AE_3D_200")
    net = build_network(arch)
    assert sum(p.numel() for p in net.parameters()) == 52607
    assert arch.encoder_sizes == [4, 200, 100, 50, 3] and arch.decoder_sizes == [3, 50, 100, 200, 4]
    custom = Architecture.parse("64,32:2")
    assert custom.hidden == (64, 32) and custom.latent == 2
    assert Architecture.from_json(custom.to_json()) == custom


def test_early_stopping_waits_for_the_learning_rate_peak(frame):
    """With one-cycle, epochs before the rate peaks say nothing: patience counts after it."""
    events = []
    model = train_frames(frame, TrainOptions(**{**OPTS, "epochs": 10, "patience": 1, "lr_max": 3.0}),
                         report=lambda e, i: events.append(e))
    assert len(model.history) >= 4  # warm-up is ceil(0.3 * 10) = 3 epochs, then one stale epoch
    assert ("early_stop" in events) == (len(model.history) < 10)


def test_numpy_scalars_as_options_train_and_resume(frame, tmp_path):
    ckpt = str(tmp_path / "m.jzm.ckpt")
    opts = dict(OPTS, epochs=np.int64(2), seed=np.int64(7), lr_max=np.float64(5e-3))
    first = train_frames(frame, TrainOptions(**opts), checkpoint=ckpt)
    again = train_frames(frame, TrainOptions(**opts), checkpoint=ckpt, resume=True)
    assert again.weights_sha256 == first.weights_sha256


# --- the committed test model (tests/make_test_model.py -> tests/data/small_model.jzm) ------

def _decoding_precision(model) -> dict[str, float]:
    """Median |residual| of jets the model never saw (pt relative; eta, phi absolute)."""
    from jetzip.training import reconstruct

    frame = jetfactory.model_frame(20_000, seed=4242)
    back = reconstruct(model, frame)
    dphi = (back[:, 3] - frame[:, 3] + np.pi) % (2 * np.pi) - np.pi
    return {"pt": float(np.median(np.abs(back[:, 1] / frame[:, 1] - 1))),
            "eta": float(np.median(np.abs(back[:, 2] - frame[:, 2]))),
            "phi": float(np.median(np.abs(dphi)))}


def test_committed_test_model_is_trained_and_decodes_as_the_tests_need():
    """The pipeline tests assume a model good to a few percent: check it on unseen jets."""
    model = load_model(SMALL_MODEL)
    assert model.metadata["made_by"] == "tests/make_test_model.py"
    losses = [h["val_loss"] for h in model.history]
    assert len(losses) == 6 and model.metadata["best_val_loss"] < 0.2 * losses[0]  # it learned
    got = _decoding_precision(model)
    assert got["pt"] < 0.02 and got["eta"] < 0.05 and got["phi"] < 0.05, got  # roundtrip tests: < 0.05


def test_committed_test_model_is_what_the_script_makes():
    """Rerunning tests/make_test_model.py gives a model of the committed one's kind: the same
    architecture, options and training record, and a decoder as good. The weights themselves
    are not compared: float training differs in the last bits between CPUs (an AVX-512 machine
    gives other weights with the same torch), and what is pinnable is pinned."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_test_model", SMALL_MODEL.parents[1] / "make_test_model.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.DEFAULT_OUTPUT == SMALL_MODEL
    fresh = script.train_test_model()
    committed = load_model(SMALL_MODEL)
    assert fresh.arch == committed.arch
    assert json.loads(json.dumps(fresh.metadata["options"])) == committed.metadata["options"]
    got, ref = _decoding_precision(fresh), _decoding_precision(committed)
    for k in ("pt", "eta", "phi"):
        assert got[k] < max(2 * ref[k], 0.02), (k, got, ref)
