#!/usr/bin/env python3
"""Train the small test model the suite uses (``tests/data/small_model.jzm``) and save it.

The suite used to train this model once per session (two minutes on a loaded CI machine);
now it is trained once, here, and committed. It is a real trained model, not random weights:
a 4-32-32-16-3 autoencoder trained for 6 epochs on 40k synthetic jets, which decodes jets to a
few percent, what pipeline tests need (the shipped model's precision is tested separately).

Deterministic: one torch thread, fixed seeds, CPU. With the torch version recorded in the
model's metadata, rerunning gives the same weights (``tests/test_train.py`` checks it).

    .venv/bin/python tests/make_test_model.py            # writes tests/data/small_model.jzm
    .venv/bin/python tests/make_test_model.py OUT.jzm    # somewhere else
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULT_OUTPUT = HERE / "data" / "small_model.jzm"
N_JETS, DATA_SEED = 40_000, 123
OPTIONS = dict(arch="32,32,16:3", epochs=6, batch_size=256, lr_max=5e-3, seed=1, patience=10,
               device="cpu")


def train_test_model():
    """The trained model (in memory): same inputs and options every time, one thread."""
    import torch

    import jetfactory
    from jetzip.training import TrainOptions, train_frames

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the weights depend on the thread count; fix it
    try:
        frame = jetfactory.model_frame(N_JETS, seed=DATA_SEED)
        model = train_frames(frame, TrainOptions(**OPTIONS))
    finally:
        torch.set_num_threads(threads)
    model.metadata.update({
        "data": [{"file": f"synthetic: tests/jetfactory.model_frame({N_JETS}, seed={DATA_SEED})"}],
        "n_jets": N_JETS, "torch_threads": 1, "torch_version": torch.__version__.split("+")[0],
        "made_by": "tests/make_test_model.py",
    })
    return model


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else DEFAULT_OUTPUT
    model = train_test_model()
    model.save(out)
    print(f"{out}: {model.arch.name}, weights sha256 {model.weights_sha256}, "
          f"validation pt std {model.metadata['val_residuals']['pt']['std']:.3g}")


if __name__ == "__main__":
    main(sys.argv[1:])
