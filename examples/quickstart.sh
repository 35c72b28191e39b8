#!/usr/bin/env bash
# The README's main job: set up .venv if needed, then compress the shipped example jets with the
# shipped model, inspect the .aez, restore a ROOT file and measure the residuals.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
out=${1:-examples/out}
mkdir -p "$out"
jz=.venv/bin/jetzip
set -x
$jz compress examples/sample_jets.root -o "$out/sample_jets.aez" --force
$jz inspect "$out/sample_jets.aez"
$jz decompress "$out/sample_jets.aez" -o "$out/sample_jets_restored.root" --force
$jz evaluate examples/sample_jets.root "$out/sample_jets.aez" --plots "$out/plots"
