#!/usr/bin/env bash
# Reproduce jetzip/models/context_v1.jzc, the error-bounded codec's learned entropy model, and
# the figures of its model card (models/CONTEXT_MODEL.md).
#   bash models/train_context.sh     (about 15 minutes on 2 cores: 13 generating jets, 1 training,
#                                     plus the measurement: about 1 hour more if the held-out
#                                     jets must be generated too)
# Training jets: 400k Pythia8 jets, seed 12 (the held-out jets of the measurement are seed 11,
# the example jets seed 3, the autoencoder's training jets seed 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
.venv/bin/pip install --quiet -e '.[gen]'
mkdir -p data
if [ ! -f data/train_ctx_seed12.root ]; then
    .venv/bin/python examples/make_jets.py --jets 400000 --seed 12 --jobs 1 -o data/train_ctx_seed12.root
fi
.venv/bin/jetzip train --entropy-model data/train_ctx_seed12.root -o jetzip/models/context_v1.jzc \
    --seed 0 --threads 1 --force --json --no-progress > models/context_v1_training.json
if [ ! -f data/heldout_seed11.root ]; then
    .venv/bin/python examples/make_jets.py --jets 200000 --seed 11 --jobs 1 -o data/heldout_seed11.root
fi
.venv/bin/python examples/measure_bounded.py --out "examples/bounded_$(date +%F)"
