#!/usr/bin/env bash
# Reproduce the shipped model jetzip/models/AE_3D_200.jzm and its model card figures.
#   bash models/train_default.sh            (about 1.5 hours on 2 cores, see models/README.md)
# Steps: generate 2M training jets and 200k held-out jets with Pythia8 + FastJet (seeded),
# train with `jetzip train`, then measure the residuals on held-out and real CMS jets.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
.venv/bin/pip install --quiet -e '.[gen]'
mkdir -p data
if [ ! -f data/train_2M.root ]; then
    .venv/bin/python examples/make_jets.py --jets 2000000 --seed 1 -o data/train_2M.root
fi
if [ ! -f data/heldout_200k.root ]; then
    # another seed and another process mix (adds W+jets and H->bb, different weights)
    .venv/bin/python examples/make_jets.py --jets 200000 --seed 2 \
        --mix "ttbar=0.2,qcd20=0.15,qcd150=0.1,qcd600=0.1,qcd1500=0.05,wjets=0.25,higgs_bb=0.15" \
        -o data/heldout_200k.root
fi
.venv/bin/jetzip train data/train_2M.root -o jetzip/models/AE_3D_200.jzm --arch AE_3D_200 \
    --epochs "${EPOCHS:-100}" --batch-size 256 --lr-max 1e-3 --patience 30 --val-fraction 0.1 \
    --seed 0 --threads 1 --device cpu --normalization log-E-over-p/log-pt/linear-eta-phi \
    --force ${RESUME:+--resume}
.venv/bin/python models/measure.py jetzip/models/AE_3D_200.jzm data/heldout_200k.root \
    ../shared/data/nano_dy.root --json models/residuals.json | tee models/residuals.md
