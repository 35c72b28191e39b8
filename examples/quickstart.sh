#!/usr/bin/env bash
# The README's main job: set up .venv if needed, then compress the shipped example jets with both
# codecs (the error-bounded one and the 3-float latent with the shipped model), inspect the .aez
# files, read one back as arrays, restore ROOT files and check every jet against the bounds / measure the residuals.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
out=${1:-examples/out}
mkdir -p "$out"
jz=.venv/bin/jetzip
set -x
# error-bounded: every value within NanoAOD's own precision (pt, mass 2^-11 relative; eta, phi 2^-12)
$jz compress examples/sample_jets.root -o "$out/sample_jets_bounded.aez" --error-bound nanoaod --force
$jz inspect "$out/sample_jets_bounded.aez"
$jz decompress "$out/sample_jets_bounded.aez" -o "$out/sample_jets_bounded.root" --force
# read it back like uproot reads ROOT: the input's names, only the Jet collection decoded
.venv/bin/python -c 'import jetzip, sys; jets = jetzip.arrays(sys.argv[1], ["Jet_pt", "Jet_eta", "nJet"]); print(jets.type); print(jets.Jet_pt)' "$out/sample_jets_bounded.aez"
$jz evaluate examples/sample_jets.root "$out/sample_jets_bounded.aez" --baselines
# the 3-float latent of the shipped AE_3D_200 model
$jz compress examples/sample_jets.root -o "$out/sample_jets.aez" --force
$jz inspect "$out/sample_jets.aez"
$jz decompress "$out/sample_jets.aez" -o "$out/sample_jets_restored.root" --force
$jz evaluate examples/sample_jets.root "$out/sample_jets.aez" --plots "$out/plots"
