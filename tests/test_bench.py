"""The benchmark runs on a tiny input and produces every column of its table (no timing asserts)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from jetzip.bench import BASELINE_BATCHES, format_table, memory_scaling, run_bench
from jetzip.cli import cli


def test_bench_produces_every_figure(tmp_path, small_model_path):
    res = run_bench(tmp_path, n_jets=6000, model=str(small_model_path), repeats=1)
    for key in ("compress", "decompress_root", "decompress_hdf5"):
        r = res[key]
        assert r["seconds"] > 0 and r["jets_per_s"] > 0 and r["input_mb_per_s"] > 0 and r["peak_rss_mb"] > 50
        assert r["n_jets"] == res["n_jets"]
    assert res["engine"]["encode_s"] > 0 and res["engine"]["decode_s"] > 0
    b = res["baselines"]
    assert b["one_tensor_encode_s"] > 0 and b["one_tensor_decode_s"] > 0
    assert set(b["batched"]) == {str(x) for x in BASELINE_BATCHES}
    assert b["best_batched_encode_batch"] in BASELINE_BATCHES
    assert b["float16_cast_s"] >= 0
    assert set(b["zstd"]) == {"3", "19"} and all(z["bytes_per_jet"] > 0 for z in b["zstd"].values())
    for k in ("compress_vs_one_tensor_encode", "compress_vs_best_batched_encode",
              "decompress_root_vs_one_tensor_decode", "decompress_root_vs_best_batched_decode",
              "decompress_hdf5_vs_best_batched_decode", "engine_encode_vs_best_batched",
              "compress_vs_float16_cast", "compress_vs_zstd3", "compress_vs_zstd19"):
        assert res["ratios"][k] > 0, k
    rp = res["reduced_precision"]
    assert set(rp["float32"]) == {"E", "pt", "eta", "phi"} and "bf16_acceptable" in rp
    table = format_table(res)
    for label in ("jetzip compress ROOT -> .aez", "jetzip decompress .aez -> ROOT", "jetzip decompress .aez -> HDF5",
                  "jetzip engine encode", "baseline: thesis one-tensor encode", "baseline: batched encode, batch 4096",
                  "baseline: numpy astype(float16)", "baseline: zstd -19", "ratio compress_vs_best_batched_encode",
                  "peak RSS MB", "M jets/s", "MB/s", "bf16 worst std ratio"):
        assert label in table, label
    json.dumps(res)  # the --json output is plain JSON


def test_bench_cli_memory_mode(tmp_path, small_model_path):
    out = tmp_path / "mem.json"
    r = CliRunner().invoke(cli, ["bench", "--workdir", str(tmp_path), "--memory", "3000,6000", "-m",
                                 str(small_model_path), "--json", str(out)])
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())["memory"]
    assert [row["n_jets"] > 0 for row in rows] == [True, True]
    assert all(row["compress_peak_rss_mb"] > 50 and row["decompress_peak_rss_mb"] > 50 for row in rows)
    assert "compress peak RSS" in r.stdout


def test_memory_scaling_reuses_inputs(tmp_path, small_model_path):
    rows = memory_scaling(tmp_path, [4000], model=str(small_model_path))
    assert (tmp_path / "bench_4000.root").exists() and rows[0]["n_jets"] > 3000
