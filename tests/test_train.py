"""jetzip train: learning, checkpoints and resume, determinism, the model file it writes."""
from __future__ import annotations

import json

import numpy as np
import pytest

import jetzip
from jetzip.model import load_model
from jetzip.training import TrainOptions, train_frames

import jetfactory
from conftest import run_cli

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


def test_resume_refuses_other_options(frame, tmp_path):
    ckpt = str(tmp_path / "m.jzm.ckpt")
    train_frames(frame, TrainOptions(**{**OPTS, "epochs": 1}), checkpoint=ckpt)
    with pytest.raises(jetzip.JetzipError, match="other options or data"):
        train_frames(frame, TrainOptions(**{**OPTS, "lr_max": 1e-3}), checkpoint=ckpt, resume=True)


def test_cli_train_writes_a_loadable_model_with_history(tmp_path, jetzip_exe):
    src = tmp_path / "jets.root"
    jetfactory.write_nanoaod(src, n_events=1500, seed=4)
    out = tmp_path / "m.jzm"
    r = run_cli(jetzip_exe, "train", src, "-o", out, "--arch", "AE_3D_50", "--epochs", "3",
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
    r = run_cli(jetzip_exe, "train", src, "-o", out, "--epochs", "1")
    assert r.returncode == 1 and b"exists" in r.stderr


def test_cli_train_rejects_bad_arch(tmp_path, jetzip_exe):
    src = tmp_path / "jets.root"
    jetfactory.write_nanoaod(src, n_events=50, seed=4)
    r = run_cli(jetzip_exe, "train", src, "-o", tmp_path / "m.jzm", "--arch", "AE_9D_7")
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
