"""``jetzip bench``: throughput and memory of jetzip against the baselines users compare it with.

In one run, on the same jets and the same machine:
- jetzip end to end: compress (ROOT -> .aez) and decompress (.aez -> ROOT, .aez -> HDF5), each in
  a fresh subprocess so its peak resident memory is its own; jets/s and input MB/s;
- the model alone inside jetzip's engine (normalization included): encode and decode jets/s;
- baselines with the same weights, under ``torch.inference_mode`` and default threads: the
  thesis notebooks' way (``model.encode`` on all jets as one float32 tensor) and the plain
  batched loop (best of batch sizes 4k-256k); numpy ``astype(float16)`` of the four columns;
  zstd levels 3 and 19 of the raw float32 columns;
- ratios of jetzip's figures to each baseline;
- on CUDA, when present: end to end with ``--device cuda`` and the model alone in float32,
  tf32 and bf16, with the decoded residuals of each precision beside the float32 ones.

Speed targets are judged from this output, never from timed unit tests.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

BASELINE_BATCHES = (4096, 16384, 65536, 262144)


def _best_of(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _run_child(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line; add its peak RSS."""
    wrapper = (
        "import json, resource, sys, time\n" + code +
        "\nresult['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps(result))\n")
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def end_to_end(kind: str, src: str, dst: str, model: str, device: str, batch_size: int | None,
               repeats: int = 1) -> dict:
    """Best of `repeats` fresh-process runs (time and the peak RSS of that run)."""
    runs = [_end_to_end_once(kind, src, dst, model, device, batch_size) for _ in range(repeats)]
    return min(runs, key=lambda r: r["seconds"])


def _end_to_end_once(kind: str, src: str, dst: str, model: str, device: str, batch_size: int | None) -> dict:
    bs = f", batch_size={batch_size}" if batch_size else ""
    call = (f"jetzip.compress({src!r}, {dst!r}, model={model!r}, device={device!r}, force=True{bs})"
            if kind == "compress" else
            f"jetzip.decompress({src!r}, {dst!r}, device={device!r}, force=True{bs})")
    code = ("import jetzip, os\n"
            "import jetzip.api, jetzip.codec, jetzip.tables.root, jetzip.tables.hdf5, torch, uproot, h5py\n"
            f"t0 = time.perf_counter()\nr = {call}\nsec = time.perf_counter() - t0\n"
            "result = {'seconds': sec, 'n_jets': r['n_jets']}\n")
    return _run_child(code)


def load_frame(path: str) -> np.ndarray:
    from .features import to_model_frame
    from .tables import open_table

    src = open_table(path)
    try:
        frames = [to_model_frame(c.columns, src.info.representation, src.info.units)
                  for c in src.chunks(1 << 21)]
    finally:
        src.close()
    return np.concatenate(frames)


def model_baselines(model, frame: np.ndarray, repeats: int) -> dict:
    """The thesis loop (one tensor) and the plain batched loop, encode and decode."""
    import torch

    net = model.network()
    x = torch.from_numpy(model.normalization.apply(frame))
    out: dict[str, Any] = {}
    with torch.inference_mode():
        z = net.encode(x)
        out["one_tensor_encode_s"] = _best_of(lambda: net.encode(x), repeats)
        out["one_tensor_decode_s"] = _best_of(lambda: net.decode(z), repeats)
        batched = {}
        for bs in BASELINE_BATCHES:
            enc = _best_of(lambda: [net.encode(x[i:i + bs]) for i in range(0, len(x), bs)], repeats)
            dec = _best_of(lambda: [net.decode(z[i:i + bs]) for i in range(0, len(z), bs)], repeats)
            batched[bs] = (enc, dec)
    out["batched"] = {str(k): {"encode_s": v[0], "decode_s": v[1]} for k, v in batched.items()}
    best_enc = min(batched, key=lambda k: batched[k][0])
    best_dec = min(batched, key=lambda k: batched[k][1])
    out["best_batched_encode_s"], out["best_batched_encode_batch"] = batched[best_enc][0], best_enc
    out["best_batched_decode_s"], out["best_batched_decode_batch"] = batched[best_dec][1], best_dec
    return out


def engine_alone(model, frame: np.ndarray, device: str, batch_size: int | None, repeats: int) -> dict:
    from .engine import DEFAULT_BATCH_SIZE, Decoder, Encoder

    bs = batch_size or DEFAULT_BATCH_SIZE
    enc = Encoder(model, device, bs)
    dec = Decoder(model, device, bs)
    z = enc.encode(frame)
    return {"encode_s": _best_of(lambda: enc.encode(frame), repeats),
            "decode_s": _best_of(lambda: dec.decode(z), repeats), "batch_size": bs}


def other_baselines(frame: np.ndarray, repeats: int) -> dict:
    cols = [np.ascontiguousarray(frame[:, i], dtype=np.float32) for i in range(4)]
    raw = b"".join(c.tobytes() for c in cols)
    out: dict[str, Any] = {"raw_bytes": len(raw)}
    with np.errstate(over="ignore"):  # E above 65504 GeV overflows float16: part of the point
        out["float16_cast_s"] = _best_of(lambda: [c.astype(np.float16) for c in cols], repeats)
    try:
        import zstandard
    except ImportError:
        out["zstd"] = None
        return out
    out["zstd"] = {}
    for level in (3, 19):
        cctx = zstandard.ZstdCompressor(level=level)
        t0 = time.perf_counter()
        blob = cctx.compress(raw)
        sec = time.perf_counter() - t0
        out["zstd"][str(level)] = {"seconds": sec, "bytes": len(blob), "bytes_per_jet": len(blob) / len(frame)}
    return out


def reduced_precision(model, frame: np.ndarray, device: str) -> dict:
    """Decoded residual std of float32 against bf16/tf32 (CUDA) or bf16 autocast (CPU)."""
    import torch

    from .residuals import frame_columns, residuals, summarize_all

    dev = torch.device(device)
    net = model.network().to(dev)
    x = torch.from_numpy(model.normalization.apply(frame[:500_000])).to(dev)

    def run(dtype=None) -> np.ndarray:
        with torch.inference_mode():
            if dtype is None:
                y = net(x)
            else:
                with torch.autocast(dev.type, dtype=dtype):
                    y = net(x)
        return model.normalization.invert(y.float().cpu().numpy())

    ref = frame_columns(frame[:500_000])
    out = {}
    for name, dtype in (("float32", None), ("bf16", torch.bfloat16)):
        s = summarize_all(residuals(ref, frame_columns(run(dtype))))
        out[name] = {k: v["std"] for k, v in s.items()}
    worst = max(out["bf16"][k] / out["float32"][k] for k in out["float32"])
    out["bf16_worst_std_ratio"] = worst
    out["bf16_acceptable"] = worst <= 1.05
    return out


def synthetic_input(work: Path, n_jets: int, log: Callable[[str], None]) -> str:
    """A NanoAOD-like ROOT file of `n_jets` synthetic jets in `work`, reused between runs."""
    from .synthetic import write_nanoaod

    path = str(work / f"bench_{n_jets}.root")
    if not os.path.exists(path):
        log(f"writing {n_jets} synthetic NanoAOD-like jets to {path}")
        write_nanoaod(path + ".part", n_jets, seed=42)
        os.replace(path + ".part", path)
    return path


def run_bench(workdir: str | os.PathLike, *, n_jets: int = 2_000_000, input: str | None = None,
              model: str | None = None, device: str = "cpu", batch_size: int | None = None,
              repeats: int = 2, log: Callable[[str], None] = lambda m: None) -> dict:
    """Run the whole benchmark; returns a JSON-serialisable result."""
    import torch

    from .model import default_model_path, resolve_model

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    model_path = str(model or default_model_path())
    the_model = resolve_model(model_path)
    if input is None:
        input = synthetic_input(work, n_jets, log)
    size_mb = os.path.getsize(input) / 1e6
    log("reading jets for the in-memory baselines")
    frame = load_frame(input)
    n = len(frame)
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "device": device, "input": input, "input_mb": size_mb, "n_jets": n, "model": the_model.name,
    }
    if device.startswith("cuda"):
        res["device_name"] = torch.cuda.get_device_name(torch.device(device))
    aez, back_root, back_h5 = (str(work / f) for f in ("bench.aez", "bench_back.root", "bench_back.h5"))
    log("jetzip compress (ROOT -> .aez)")
    res["compress"] = end_to_end("compress", input, aez, model_path, device, batch_size, repeats)
    log("jetzip decompress (.aez -> ROOT)")
    res["decompress_root"] = end_to_end("decompress", aez, back_root, model_path, device, batch_size, repeats)
    log("jetzip decompress (.aez -> HDF5)")
    res["decompress_hdf5"] = end_to_end("decompress", aez, back_h5, model_path, device, batch_size, repeats)
    for key in ("compress", "decompress_root", "decompress_hdf5"):
        r = res[key]
        r["jets_per_s"] = n / r["seconds"]
        r["input_mb_per_s"] = (size_mb if key == "compress" else os.path.getsize(aez) / 1e6) / r["seconds"]
    res["aez_bytes_per_jet"] = os.path.getsize(aez) / n
    log("model alone in jetzip's engine")
    res["engine"] = engine_alone(the_model, frame, device, batch_size, repeats)
    log("baselines: plain PyTorch loops")
    res["baselines"] = model_baselines(the_model, frame, repeats)
    log("baselines: float16 cast and zstd")
    res["baselines"].update(other_baselines(frame, repeats))
    log("reduced precision check")
    res["reduced_precision"] = reduced_precision(the_model, frame, device)
    b = res["baselines"]
    res["ratios"] = {
        "compress_vs_one_tensor_encode": b["one_tensor_encode_s"] / res["compress"]["seconds"],
        "compress_vs_best_batched_encode": b["best_batched_encode_s"] / res["compress"]["seconds"],
        "decompress_root_vs_one_tensor_decode": b["one_tensor_decode_s"] / res["decompress_root"]["seconds"],
        "decompress_root_vs_best_batched_decode": b["best_batched_decode_s"] / res["decompress_root"]["seconds"],
        "decompress_hdf5_vs_best_batched_decode": b["best_batched_decode_s"] / res["decompress_hdf5"]["seconds"],
        "engine_encode_vs_best_batched": b["best_batched_encode_s"] / res["engine"]["encode_s"],
        "engine_decode_vs_best_batched": b["best_batched_decode_s"] / res["engine"]["decode_s"],
        "compress_vs_float16_cast": b["float16_cast_s"] / res["compress"]["seconds"],
    }
    if b.get("zstd"):
        for level, z in b["zstd"].items():
            res["ratios"][f"compress_vs_zstd{level}"] = z["seconds"] / res["compress"]["seconds"]
    return res


def memory_scaling(workdir: str | os.PathLike, sizes: list[int], model: str | None = None,
                   log: Callable[[str], None] = lambda m: None) -> list[dict]:
    """Peak RSS of compress and decompress for inputs of several sizes (should not grow)."""
    from .model import default_model_path

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    model_path = str(model or default_model_path())
    rows = []
    for n in sizes:
        src = synthetic_input(work, n, log)
        aez = str(work / f"mem_{n}.aez")
        log(f"compress / decompress {n} jets")
        c = end_to_end("compress", src, aez, model_path, "cpu", None)
        d = end_to_end("decompress", aez, str(work / f"mem_{n}_back.root"), model_path, "cpu", None)
        rows.append({"n_jets": c["n_jets"], "compress_peak_rss_mb": c["peak_rss_mb"],
                     "decompress_peak_rss_mb": d["peak_rss_mb"], "compress_s": c["seconds"],
                     "decompress_s": d["seconds"]})
    return rows


def format_table(res: dict) -> str:
    """A plain-text table of the result (also what the README quotes)."""
    n = res["n_jets"]
    b = res["baselines"]
    lines = [f"jetzip bench, {res['date']}, {res['machine']}, torch {res['torch']}, "
             f"{res['threads']} threads, device {res['device']}{' (' + res['device_name'] + ')' if res.get('device_name') else ''}",
             f"input {res['input']} ({res['input_mb']:.1f} MB, {n} jets)", "",
             f"{'what':48s} {'seconds':>9s} {'M jets/s':>9s} {'MB/s':>8s} {'peak RSS MB':>12s}"]

    def row(name, sec, mbps=None, rss=None):
        lines.append(f"{name:48s} {sec:9.3f} {n / sec / 1e6:9.3f} "
                     f"{'' if mbps is None else f'{mbps:8.1f}':>8s} {'' if rss is None else f'{rss:12.0f}':>12s}")

    for key, label in (("compress", "jetzip compress ROOT -> .aez"),
                       ("decompress_root", "jetzip decompress .aez -> ROOT"),
                       ("decompress_hdf5", "jetzip decompress .aez -> HDF5")):
        r = res[key]
        row(label, r["seconds"], r["input_mb_per_s"], r["peak_rss_mb"])
    row(f"jetzip engine encode (batch {res['engine']['batch_size']})", res["engine"]["encode_s"])
    row(f"jetzip engine decode (batch {res['engine']['batch_size']})", res["engine"]["decode_s"])
    row("baseline: thesis one-tensor encode", b["one_tensor_encode_s"])
    row("baseline: thesis one-tensor decode", b["one_tensor_decode_s"])
    for bs, v in b["batched"].items():
        row(f"baseline: batched encode, batch {bs}", v["encode_s"])
    for bs, v in b["batched"].items():
        row(f"baseline: batched decode, batch {bs}", v["decode_s"])
    row("baseline: numpy astype(float16), 4 columns", b["float16_cast_s"])
    for level, z in (b.get("zstd") or {}).items():
        row(f"baseline: zstd -{level} raw float32 ({z['bytes_per_jet']:.2f} B/jet)", z["seconds"])
    lines.append("")
    lines.append(f".aez size: {res['aez_bytes_per_jet']:.3f} B/jet (raw float32: 16)")
    for k, v in res["ratios"].items():
        lines.append(f"ratio {k:45s} {v:7.2f}x")
    rp = res["reduced_precision"]
    lines.append("")
    lines.append("reduced precision (decoded residual std; bf16 used only if within 5% of float32):")
    for k in rp["float32"]:
        lines.append(f"  {k:4s} float32 {rp['float32'][k]:.3e}  bf16 {rp['bf16'][k]:.3e}")
    lines.append(f"  bf16 worst std ratio {rp['bf16_worst_std_ratio']:.2f} -> "
                 f"{'acceptable' if rp['bf16_acceptable'] else 'not acceptable, stays off'}")
    return "\n".join(lines)
