"""The benchmark runs on a tiny input and produces every figure of its table (no timing asserts)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from jetzip.bench import (BASELINE_BATCHES, flop_per_jet, format_table, memory_scaling, plain_numpy,
                          ratios, run_bench)
from jetzip.cli import cli


@pytest.fixture(scope="module")
def bench_result(tmp_path_factory, small_model_path):
    work = tmp_path_factory.mktemp("bench")
    return run_bench(work, n_jets=6000, model=str(small_model_path), repeats=2, model_jets=4000)


def test_bench_produces_every_figure(bench_result):
    res = bench_result
    n, m = res["n_jets"], res["model_jets"]
    assert n > 5000 and m == 4000
    assert res["device"] in ("cpu", "cuda", "cuda:0")  # --device auto resolved
    ro = res["read_only"]
    assert ro["one_thread_s"] > 0 and ro["pool_s"] > 0 and ro["best_s"] == min(ro["one_thread_s"], ro["pool_s"])
    assert {"Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"} <= set(ro["branches"])
    for key in ("compress", "decompress_root", "decompress_hdf5"):
        r = res[key]
        assert r["seconds"] > 0 and r["jets_per_s"] > 0 and r["input_mb_per_s"] > 0 and r["peak_rss_mb"] > 50
        assert r["n_jets"] == n
    e = res["engine"]
    assert e["chosen"] in ("numpy", "torch", "cuda")
    for bk in ("numpy", "torch"):
        assert e[bk]["encode_s"] > 0 and e[bk]["decode_s"] > 0 and e[bk]["workers"] >= 1
    b = res["baselines"]
    for lib in ("torch", "numpy"):
        assert set(b[lib]) == {str(x) for x in BASELINE_BATCHES}
        assert all(v["encode_s"] > 0 and v["decode_s"] > 0 for v in b[lib].values())
    for op in ("encode", "decode"):
        best = b[f"best_plain_{op}"]
        assert best["seconds"] == min(v[f"{op}_s"] for lib in ("torch", "numpy") for v in b[lib].values())
        assert best["seconds"] == b[best["library"]][str(best["batch_size"])][f"{op}_s"]
        assert b[f"one_tensor_{op}_s"] > 0
    assert b["float16_cast_s"] >= 0
    assert set(b["zstd"]) == {"3", "19"} and all(z["bytes_per_jet"] > 0 for z in b["zstd"].values())
    roof = res["roofline"]
    for op in ("encode", "decode"):
        r = roof[op]
        assert r["jets_per_s"] > 0 and r["library"] in ("numpy", "torch")
        assert r["gflops"] == pytest.approx(r["jets_per_s"] * r["flop_per_jet"] / 1e9)
        part = [c for c in roof["candidates"] if c["part"] == ("encoder" if op == "encode" else "decoder")]
        assert r["jets_per_s"] == max(c["jets_per_s"] for c in part)
    rp = res["reduced_precision"]
    assert set(rp["float32"]) == {"E", "pt", "eta", "phi"} and "bf16_acceptable" in rp
    json.dumps(res)  # the --json output is plain JSON


def test_ratios_are_the_rates_they_name(bench_result):
    res = bench_result
    n, m = res["n_jets"], res["model_jets"]
    r = res["ratios"]
    assert r == ratios(res)
    eng = res["engine"][res["engine"]["chosen"]]
    b = res["baselines"]
    assert r["engine_encode_vs_best_plain"] == pytest.approx(b["best_plain_encode"]["seconds"] / eng["encode_s"])
    assert r["engine_decode_vs_best_plain"] == pytest.approx(b["best_plain_decode"]["seconds"] / eng["decode_s"])
    cpu = res["engine"][res["engine"]["cpu_chosen"]]
    assert res["engine"]["cpu_chosen"] in ("numpy", "torch")
    assert r["cpu_engine_encode_vs_roofline"] == pytest.approx(
        m / cpu["encode_s"] / res["roofline"]["encode"]["jets_per_s"])
    assert r["cpu_engine_decode_vs_roofline"] == pytest.approx(
        m / cpu["decode_s"] / res["roofline"]["decode"]["jets_per_s"])
    assert ("gpu_engine_encode_vs_roofline" in r) == (res["engine"]["chosen"] == "cuda")
    assert r["compress_vs_best_plain_encode"] == pytest.approx(
        (n / res["compress"]["seconds"]) / (m / b["best_plain_encode"]["seconds"]))
    assert r["decompress_root_vs_best_plain_decode"] == pytest.approx(
        (n / res["decompress_root"]["seconds"]) / (m / b["best_plain_decode"]["seconds"]))
    assert r["compress_vs_read_only"] == pytest.approx(res["read_only"]["best_s"] / res["compress"]["seconds"])
    assert all(v > 0 for v in r.values())


def test_table_shows_every_row(bench_result):
    table = format_table(bench_result)
    for label in ("read only: uproot, jet columns, 1 thread", "jetzip compress ROOT -> .aez",
                  "jetzip decompress .aez -> ROOT", "jetzip decompress .aez -> HDF5",
                  "engine encode: numpy", "engine encode: torch", "engine decode: numpy",
                  "plain torch loop encode, batch 4096", "plain numpy loop decode, batch 262144",
                  "plain torch one tensor (thesis) encode", "roofline encode:", "roofline decode:",
                  "kFLOP/jet", "baseline: numpy astype(float16)", "baseline: zstd -19",
                  "cpu_engine_encode_vs_roofline", "compress_vs_best_plain_encode", "compress_vs_read_only",
                  "peak RSS MB", "M jets/s", "MB/s", "bf16 worst std ratio", "jetzip's choice"):
        assert label in table, label


def test_flop_count_of_the_shipped_architecture():
    from conftest import SHIPPED_MODEL
    from jetzip.model import load_model

    model = load_model(SHIPPED_MODEL)
    # 4-200-100-50-3: 4*200 + 200*100 + 100*50 + 50*3 = 25,950 multiply-adds
    assert flop_per_jet(model, "encoder") == flop_per_jet(model, "decoder") == 51_900


def test_plain_numpy_loop_is_the_network(small_model_path):
    import torch

    from jetzip.model import load_model

    model = load_model(small_model_path)
    x = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
    net = model.network()
    with torch.inference_mode():
        z = net.encode(torch.from_numpy(x)).numpy()
        y = net.decode(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(plain_numpy(model, "encoder", x, 128), z, atol=1e-5)
    np.testing.assert_allclose(plain_numpy(model, "decoder", z, 128), y, atol=1e-5)


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
