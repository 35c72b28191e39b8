#!/usr/bin/env bash
# Train a second autoencoder, data/AE_3D_200_pt20.jzm, on jets above 20 GeV (the range of the seed
# report's ATLAS data), with the shipped model's recipe, and measure it and the shipped model on
# the same held-out jets above 20 GeV, beside the mass floor of those jets. Not shipped: it came
# out worse than the shipped model on every variable (models/README.md, "A model for jets above
# 20 GeV"; the run's output is models/pt20_residuals.md).
#   bash models/train_pt20.sh     (about 50 minutes on 2 cores: 35 generating, 10 training)
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
.venv/bin/pip install --quiet -e '.[gen]'
mkdir -p data
if [ ! -f data/train_pt20_seed21.root ]; then
    .venv/bin/python examples/make_jets.py --jets 300000 --seed 21 --pt-min 20 --jobs 1 \
        -o data/train_pt20_seed21.root
fi
if [ ! -f data/heldout_seed11.root ]; then
    .venv/bin/python examples/make_jets.py --jets 200000 --seed 11 --jobs 1 -o data/heldout_seed11.root
fi
# the held-out jets above 20 GeV, in their events
.venv/bin/python - <<'PY'
import awkward as ak
import uproot

a = uproot.open("data/heldout_seed11.root")["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"])
a = a[a.Jet_pt > 20]
with uproot.recreate("data/heldout_seed11_pt20.root") as f:
    f["Events"] = {k: a[k] for k in a.fields}
print("held-out jets above 20 GeV:", int(ak.sum(ak.num(a.Jet_pt))))
PY
.venv/bin/jetzip train data/train_pt20_seed21.root -o data/AE_3D_200_pt20.jzm --arch AE_3D_200 \
    --epochs "${EPOCHS:-100}" --batch-size 256 --lr-max 1e-3 --patience 30 --val-fraction 0.1 \
    --seed 0 --threads 1 --device cpu --normalization log-E-over-p/log-pt/linear-eta-phi --force --no-progress
{
    for m in jetzip/models/AE_3D_200.jzm data/AE_3D_200_pt20.jzm; do
        echo "## $m"
        .venv/bin/python models/measure.py "$m" data/heldout_seed11_pt20.root ../shared/data/nano_dy.root
    done
    echo "## mass floor of the held-out jets above 20 GeV"
    .venv/bin/python models/mass_floor.py data/heldout_seed11_pt20.root
} | tee models/pt20_residuals.md
