"""``jetzip bench``: throughput and memory of jetzip against what the machine and plain loops allow.

In one run, on the same jets and the same machine (the machines differ: only figures of one run
are compared with each other):

- **read only**: the input's jet columns read with uproot alone (one thread, and a pool of every
  core), the floor under any file-to-file figure;
- **end to end**: compress (ROOT -> .aez) and decompress (.aez -> ROOT, .aez -> HDF5), each in a
  fresh subprocess so its peak resident memory is its own; jets/s and MB/s;
- **model only**, on the first ``MODEL_JETS`` jets, already normalized in memory:
  jetzip's engine with every CPU backend (numpy and torch, see :mod:`jetzip.engine`) and, on a
  GPU, its GPU engine; the plain batched loops a user would write with the same weights
  (torch: ``net.encode(x[i:i+b])`` under ``inference_mode``; numpy: ``np.tanh(h @ W + b)``),
  each with its library's default threads and the best of batch sizes 4k-256k; the thesis
  notebooks' one-tensor call;
- **roofline**: the float32 matrix multiplies of the network's own layer shapes and nothing
  else (no bias, no tanh), numpy and torch, on the engine's workers (one BLAS thread each) and
  with the BLAS's own threads, best of several batch sizes: jets/s = measured FLOP/s divided by
  the network's FLOP per jet (2 x 25,950 multiply-adds = 51.9 kFLOP to encode, the same to
  decode);
- baselines users compare with: numpy ``astype(float16)`` of the four columns, zstd -3 and -19 of
  the raw float32 columns; the decoded residuals of bf16 next to float32;
- **ratios** (rates, so > 1 means jetzip is faster): engine against the best plain loop and
  against the roofline, file to file against the best plain loop and against reading alone.

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
ROOFLINE_BATCHES = (1024, 2048, 4096, 16384)
MODEL_JETS = 1_000_000  # jets for the in-memory model-only timings (all of them when fewer)


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
    # Imports before the clock starts: a user's process pays them once, not per file.
    code = ("import jetzip, os\n"
            "import jetzip.api, jetzip.engine, jetzip.tables.root, jetzip.tables.hdf5, torch, uproot, h5py\n"
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


# --- read only ---------------------------------------------------------------------------

def read_only(path: str, repeats: int) -> dict | None:
    """The jet columns (and counter) read with uproot alone: one thread, then a pool of every core.

    None for inputs that are not ROOT TTrees (the figure is uproot's).
    """
    from concurrent.futures import ThreadPoolExecutor

    import uproot

    from .tables import open_table

    src = open_table(path)
    try:
        info = src.info
    finally:
        src.close()
    if info.format != "root" or not info.tree or info.extra.get("rntuple"):
        return None
    branches = list(dict.fromkeys([*info.columns.values(), *([info.counter] if info.counter else [])]))
    threads = os.cpu_count() or 1
    out: dict[str, Any] = {"branches": branches, "pool_threads": threads}

    def read(pool) -> int:
        kw = {} if pool is None else {"decompression_executor": pool, "interpretation_executor": pool}
        with uproot.open(path, **kw) as f:
            arrays = f[info.tree].arrays(branches, library="np")
        return sum(int(getattr(a, "nbytes", 0)) for a in arrays.values())

    out["one_thread_s"] = _best_of(lambda: read(None), repeats)
    with ThreadPoolExecutor(threads) as pool:
        out["pool_s"] = _best_of(lambda: read(pool), repeats)
    out["best_s"] = min(out["one_thread_s"], out["pool_s"])
    return out


# --- model only ------------------------------------------------------------------------

def _layers(model, part: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W^T, b) per layer, float32, C order."""
    n = len(model.arch.tensor_shapes(part)) // 2
    return [(np.ascontiguousarray(np.asarray(model.weights[f"{part}.{2 * i}.weight"], dtype=np.float32).T),
             np.asarray(model.weights[f"{part}.{2 * i}.bias"], dtype=np.float32)) for i in range(n)]


def flop_per_jet(model, part: str) -> int:
    """Floating-point operations of the matrix multiplies for one jet (2 per multiply-add)."""
    return sum(2 * w.shape[0] * w.shape[1] for w, _ in _layers(model, part))


def plain_numpy(model, part: str, x: np.ndarray, bs: int) -> np.ndarray:
    """The numpy loop a user would write: allocate, multiply, add, tanh (default BLAS threads)."""
    layers = _layers(model, part)
    outs = []
    for i in range(0, len(x), bs):
        h = x[i:i + bs]
        if part == "decoder":
            h = np.tanh(h)
        for k, (w, b) in enumerate(layers):
            h = h @ w + b
            if k < len(layers) - 1:
                h = np.tanh(h)
        outs.append(h)
    return np.concatenate(outs)


def plain_torch(net, part: str, x, bs: int, device) -> list:
    """The torch loop a user would write (the caller holds inference_mode)."""
    fn = net.encode if part == "encoder" else net.decode
    if device.type == "cpu":
        return [fn(x[i:i + bs]) for i in range(0, len(x), bs)]
    return [fn(x[i:i + bs].to(device)).cpu() for i in range(0, len(x), bs)]


def model_baselines(model, x: np.ndarray, z: np.ndarray, device, repeats: int) -> dict:
    """Plain loops (torch on `device`, numpy on the CPU) and the thesis one-tensor call."""
    import torch

    net = model.network().to(device)
    tx, tz = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(z))
    out: dict[str, Any] = {"torch": {}, "numpy": {}}
    with torch.inference_mode():
        if device.type == "cpu":
            out["one_tensor_encode_s"] = _best_of(lambda: net.encode(tx), repeats)
            out["one_tensor_decode_s"] = _best_of(lambda: net.decode(tz), repeats)
        else:
            out["one_tensor_encode_s"] = _best_of(lambda: net.encode(tx.to(device)).cpu(), repeats)
            out["one_tensor_decode_s"] = _best_of(lambda: net.decode(tz.to(device)).cpu(), repeats)
        for bs in BASELINE_BATCHES:
            out["torch"][str(bs)] = {
                "encode_s": _best_of(lambda: plain_torch(net, "encoder", tx, bs, device), repeats),
                "decode_s": _best_of(lambda: plain_torch(net, "decoder", tz, bs, device), repeats)}
    for bs in BASELINE_BATCHES:
        out["numpy"][str(bs)] = {
            "encode_s": _best_of(lambda: plain_numpy(model, "encoder", x, bs), repeats),
            "decode_s": _best_of(lambda: plain_numpy(model, "decoder", z, bs), repeats)}
    for op in ("encode", "decode"):
        cands = [(v[f"{op}_s"], lib, int(bs)) for lib in ("torch", "numpy") for bs, v in out[lib].items()]
        sec, lib, bs = min(cands)
        out[f"best_plain_{op}"] = {"seconds": sec, "library": lib, "batch_size": bs}
    return out


def engine_alone(model, x: np.ndarray, z: np.ndarray, device, batch_size: int | None, repeats: int) -> dict:
    """jetzip's engine on normalized inputs (run), per backend; which one jetzip picks here."""
    from .engine import DEFAULT_BATCH_SIZE, Decoder, Encoder, choose_backend

    bs = batch_size or DEFAULT_BATCH_SIZE
    backends = ["numpy", "torch"] + (["cuda"] if device.type == "cuda" else [])
    out: dict[str, Any] = {"batch_size": bs, "chosen": choose_backend(device.type),
                           "cpu_chosen": choose_backend("cpu")}
    for bk in backends:
        kw = {"device": str(device)} if bk == "cuda" else {"device": "cpu", "backend": bk}
        enc = Encoder(model, batch_size=bs, **kw)
        dec = Decoder(model, batch_size=bs, **kw)
        warm = len(x) if bk == "cuda" else min(len(x), 4 * bs * enc.workers)
        enc.run(x[:warm])  # buffers and worker threads exist now
        dec.run(z[:warm])
        out[bk] = {"encode_s": _best_of(lambda: enc.run(x), repeats),
                   "decode_s": _best_of(lambda: dec.run(z), repeats), "workers": enc.workers}
        if bk == "cuda":
            out[bk]["gpu_batch_size"] = enc.engine.batch_size
    return out


def _matmul_chain_numpy(layers, bs: int, n_batches: int) -> None:
    rng = np.random.default_rng(0)
    ins = [rng.standard_normal((bs, w.shape[0])).astype(np.float32) for w, _ in layers]
    outs = [np.empty((bs, w.shape[1]), dtype=np.float32) for w, _ in layers]
    for _ in range(n_batches):
        for (w, _), a, o in zip(layers, ins, outs):
            np.matmul(a, w, out=o)


def _matmul_chain_torch(layers, bs: int, n_batches: int) -> None:
    import torch

    with torch.inference_mode():
        ws = [torch.from_numpy(w) for w, _ in layers]
        ins = [torch.randn((bs, w.shape[0])) for w in ws]
        outs = [torch.empty((bs, w.shape[1])) for w in ws]
        for _ in range(n_batches):
            for w, a, o in zip(ws, ins, outs):
                torch.mm(a, w, out=o)


def roofline(model, workers: int, n_jets: int, repeats: int) -> dict:
    """Jets/s if the network were only its matrix multiplies, at the best measured speed.

    Candidates: numpy and torch, each on `workers` engine workers at once (one BLAS thread each)
    for batch sizes ROOFLINE_BATCHES, and each with its own threads on batches of 65536.
    """
    import torch

    from .engine import single_thread_blas, worker_pool

    out: dict[str, Any] = {"candidates": []}
    for part in ("encoder", "decoder"):
        layers = _layers(model, part)
        flop = flop_per_jet(model, part)
        best = None
        for lib, chain in (("numpy", _matmul_chain_numpy), ("torch", _matmul_chain_torch)):
            for bs in ROOFLINE_BATCHES:
                per_worker = max(1, -(-n_jets // (bs * workers)))
                jets = per_worker * bs * workers

                def parallel():
                    fs = [worker_pool(workers).submit(chain, layers, bs, per_worker) for _ in range(workers)]
                    for f in fs:
                        f.result()

                with single_thread_blas():
                    parallel()  # warm: threads, buffers
                    sec = _best_of(parallel, repeats)
                cand = {"part": part, "library": lib, "threads": f"{workers} workers x 1", "batch_size": bs,
                        "jets_per_s": jets / sec, "gflops": jets * flop / sec / 1e9}
                out["candidates"].append(cand)
                best = cand if best is None or cand["jets_per_s"] > best["jets_per_s"] else best
            bs = 65536
            n_batches = max(1, -(-n_jets // bs))
            chain(layers, bs, 1)
            sec = _best_of(lambda: chain(layers, bs, n_batches), repeats)
            threads = torch.get_num_threads() if lib == "torch" else "BLAS default"
            cand = {"part": part, "library": lib, "threads": str(threads), "batch_size": bs,
                    "jets_per_s": n_batches * bs / sec, "gflops": n_batches * bs * flop / sec / 1e9}
            out["candidates"].append(cand)
            best = cand if cand["jets_per_s"] > best["jets_per_s"] else best
        op = "encode" if part == "encoder" else "decode"
        out[op] = {"flop_per_jet": flop, **{k: best[k] for k in ("library", "threads", "batch_size",
                                                                  "jets_per_s", "gflops")}}
    return out


def gpu_roofline(model, device, n_jets: int, repeats: int) -> dict:
    """The same on the GPU: torch.mm of the layer shapes on batches of 1M jets, data on the
    device, float32 with TF32 off (as the engine runs by default)."""
    import torch

    from .engine import GPU_BATCH_SIZE, tf32_matmul

    out: dict[str, Any] = {}
    restore = tf32_matmul(torch, False)
    try:
        for part in ("encoder", "decoder"):
            layers = _layers(model, part)
            flop = flop_per_jet(model, part)
            bs = GPU_BATCH_SIZE
            n_batches = max(1, -(-max(n_jets, 4 * bs) // bs))
            with torch.inference_mode():
                ws = [torch.from_numpy(w).to(device) for w, _ in layers]
                ins = [torch.randn((bs, w.shape[0]), device=device) for w in ws]
                outs = [torch.empty((bs, w.shape[1]), device=device) for w in ws]

                def chain():
                    for _ in range(n_batches):
                        for w, a, o in zip(ws, ins, outs):
                            torch.mm(a, w, out=o)
                    torch.cuda.synchronize(device)

                chain()
                sec = _best_of(chain, repeats)
            jets = n_batches * bs
            out["encode" if part == "encoder" else "decode"] = {
                "flop_per_jet": flop, "library": "torch (cuBLAS)", "threads": "GPU", "batch_size": bs,
                "jets_per_s": jets / sec, "gflops": jets * flop / sec / 1e9}
    finally:
        restore()
    return out


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


def reduced_precision(model, frame: np.ndarray, device) -> dict:
    """Decoded residual std of float32 against bf16 autocast (on `device`)."""
    import torch

    from .residuals import frame_columns, residuals, summarize_all

    dev = torch.device(device)
    sub = frame[:200_000]
    net = model.network().to(dev)
    x = torch.from_numpy(np.ascontiguousarray(model.normalization.apply(sub))).to(dev)

    def run(dtype=None) -> np.ndarray:
        with torch.inference_mode():
            if dtype is None:
                y = net(x)
            else:
                with torch.autocast(dev.type, dtype=dtype):
                    y = net(x)
        return model.normalization.invert(y.float().cpu().numpy())

    ref = frame_columns(sub)
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


def ratios(res: dict) -> dict:
    """Rates against rates (> 1: jetzip faster); the engine is the backend jetzip picks here."""
    n, m = res["n_jets"], res["model_jets"]
    eng = res["engine"][res["engine"]["chosen"]]
    cpu_eng = res["engine"][res["engine"]["cpu_chosen"]]
    b, roof = res["baselines"], res["roofline"]
    rate = {"engine_encode": m / eng["encode_s"], "engine_decode": m / eng["decode_s"],
            "plain_encode": m / b["best_plain_encode"]["seconds"],
            "plain_decode": m / b["best_plain_decode"]["seconds"],
            "compress": n / res["compress"]["seconds"],
            "decompress_root": n / res["decompress_root"]["seconds"],
            "decompress_hdf5": n / res["decompress_hdf5"]["seconds"]}
    r = {
        "engine_encode_vs_best_plain": rate["engine_encode"] / rate["plain_encode"],
        "engine_decode_vs_best_plain": rate["engine_decode"] / rate["plain_decode"],
        "cpu_engine_encode_vs_roofline": m / cpu_eng["encode_s"] / roof["encode"]["jets_per_s"],
        "cpu_engine_decode_vs_roofline": m / cpu_eng["decode_s"] / roof["decode"]["jets_per_s"],
        "compress_vs_best_plain_encode": rate["compress"] / rate["plain_encode"],
        "decompress_root_vs_best_plain_decode": rate["decompress_root"] / rate["plain_decode"],
        "decompress_hdf5_vs_best_plain_decode": rate["decompress_hdf5"] / rate["plain_decode"],
        "compress_vs_one_tensor_encode": rate["compress"] / (m / b["one_tensor_encode_s"]),
        "compress_vs_float16_cast": rate["compress"] / (n / b["float16_cast_s"]),
    }
    if res.get("gpu_roofline") and "cuda" in res["engine"]:
        g = res["engine"]["cuda"]
        r["gpu_engine_encode_vs_roofline"] = m / g["encode_s"] / res["gpu_roofline"]["encode"]["jets_per_s"]
        r["gpu_engine_decode_vs_roofline"] = m / g["decode_s"] / res["gpu_roofline"]["decode"]["jets_per_s"]
    if res.get("read_only"):
        r["compress_vs_read_only"] = rate["compress"] / (n / res["read_only"]["best_s"])
    for level, z in (b.get("zstd") or {}).items():
        r[f"compress_vs_zstd{level}"] = rate["compress"] / (n / z["seconds"])
    return r


def run_bench(workdir: str | os.PathLike, *, n_jets: int = 2_000_000, input: str | None = None,
              model: str | None = None, device: str = "auto", batch_size: int | None = None,
              repeats: int = 2, model_jets: int = MODEL_JETS,
              log: Callable[[str], None] = lambda m: None) -> dict:
    """Run the whole benchmark; returns a JSON-serialisable result."""
    import torch

    from .device import resolve_device
    from .engine import Encoder, numpy_blas
    from .model import default_model_path, resolve_model

    dev = resolve_device(device)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    model_path = str(model or default_model_path())
    the_model = resolve_model(model_path)
    if input is None:
        input = synthetic_input(work, n_jets, log)
    size_mb = os.path.getsize(input) / 1e6
    log("reading jets for the in-memory figures")
    frame = load_frame(input)
    n = len(frame)
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": platform.platform(), "python": platform.python_version(),
        "cpu": _cpu_name(), "torch": torch.__version__, "numpy": np.__version__, "numpy_blas": numpy_blas(),
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "device": str(dev), "input": input, "input_mb": size_mb, "n_jets": n, "model": the_model.name,
    }
    if dev.type == "cuda":
        res["device_name"] = torch.cuda.get_device_name(dev)
    log("read only: the jet columns with uproot")
    res["read_only"] = read_only(input, repeats)
    aez, back_root, back_h5 = (str(work / f) for f in ("bench.aez", "bench_back.root", "bench_back.h5"))
    log("jetzip compress (ROOT -> .aez)")
    res["compress"] = end_to_end("compress", input, aez, model_path, str(dev), batch_size, repeats)
    log("jetzip decompress (.aez -> ROOT)")
    res["decompress_root"] = end_to_end("decompress", aez, back_root, model_path, str(dev), batch_size, repeats)
    log("jetzip decompress (.aez -> HDF5)")
    res["decompress_hdf5"] = end_to_end("decompress", aez, back_h5, model_path, str(dev), batch_size, repeats)
    for key in ("compress", "decompress_root", "decompress_hdf5"):
        r = res[key]
        r["jets_per_s"] = n / r["seconds"]
        r["input_mb_per_s"] = (size_mb if key == "compress" else os.path.getsize(aez) / 1e6) / r["seconds"]
    res["aez_bytes_per_jet"] = os.path.getsize(aez) / n
    m = min(n, model_jets)
    res["model_jets"] = m
    x = the_model.normalization.apply(frame[:m])
    z = Encoder(the_model, "cpu").run(x)
    log(f"model alone in jetzip's engine, every backend ({m} jets)")
    res["engine"] = engine_alone(the_model, x, z, dev, batch_size, repeats)
    log("plain loops: torch and numpy")
    res["baselines"] = model_baselines(the_model, x, z, dev, repeats)
    log("roofline: the layer matrix multiplies alone")
    res["roofline"] = roofline(the_model, res["engine"]["numpy"]["workers"], m, repeats)
    if dev.type == "cuda":
        res["gpu_roofline"] = gpu_roofline(the_model, dev, m, repeats)
    log("baselines: float16 cast and zstd")
    res["baselines"].update(other_baselines(frame, repeats))
    log("reduced precision check")
    res["reduced_precision"] = reduced_precision(the_model, frame, dev)
    res["ratios"] = ratios(res)
    return res


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
    n, m = res["n_jets"], res["model_jets"]
    b, e, roof = res["baselines"], res["engine"], res["roofline"]
    lines = [f"jetzip bench, {res['date']}, {res['machine']}", f"cpu {res['cpu']} ({res['cpu_count']} cores), "
             f"torch {res['torch']}, numpy {res['numpy']} ({res['numpy_blas']}), {res['threads']} threads, "
             f"device {res['device']}{' (' + res['device_name'] + ')' if res.get('device_name') else ''}",
             f"input {res['input']} ({res['input_mb']:.1f} MB, {n} jets); model-only rows on {m} jets "
             f"in memory", "",
             f"{'what':60s} {'seconds':>9s} {'M jets/s':>9s} {'MB/s':>8s} {'peak RSS MB':>12s}"]

    def row(name, sec, jets, mbps=None, rss=None):
        lines.append(f"{name:60s} {sec:9.3f} {jets / sec / 1e6:9.3f} "
                     f"{'' if mbps is None else f'{mbps:8.1f}':>8s} {'' if rss is None else f'{rss:12.0f}':>12s}")

    ro = res.get("read_only")
    if ro:
        row("read only: uproot, jet columns, 1 thread", ro["one_thread_s"], n, res["input_mb"] / ro["one_thread_s"])
        row(f"read only: uproot, jet columns, {ro['pool_threads']} threads", ro["pool_s"], n,
            res["input_mb"] / ro["pool_s"])
    for key, label in (("compress", "jetzip compress ROOT -> .aez"),
                       ("decompress_root", "jetzip decompress .aez -> ROOT"),
                       ("decompress_hdf5", "jetzip decompress .aez -> HDF5")):
        r = res[key]
        row(label, r["seconds"], n, r["input_mb_per_s"], r["peak_rss_mb"])
    for op in ("encode", "decode"):
        for bk in ("numpy", "torch", "cuda"):
            if bk in e:
                chosen = " *" if bk == e["chosen"] else ""
                where = f"GPU, batch {e[bk]['gpu_batch_size']}" if bk == "cuda" else \
                    f"{e[bk]['workers']} workers, batch {e['batch_size']}"
                row(f"engine {op}: {bk}, {where}{chosen}", e[bk][f"{op}_s"], m)
    for op in ("encode", "decode"):
        for lib in ("torch", "numpy"):
            for bs, v in b[lib].items():
                row(f"plain {lib} loop {op}, batch {bs}", v[f"{op}_s"], m)
        row(f"plain torch one tensor (thesis) {op}", b[f"one_tensor_{op}_s"], m)
    roofs = [(op, roof[op]) for op in ("encode", "decode")]
    roofs += [(f"{op} GPU", res["gpu_roofline"][op]) for op in ("encode", "decode") if res.get("gpu_roofline")]
    for op, r in roofs:
        label = f"roofline {op}: {r['library']} matmul, {r['threads']} threads, batch {r['batch_size']}"
        lines.append(f"{label:60s} {'':9s} {r['jets_per_s'] / 1e6:9.3f}  {r['gflops']:.1f} GFLOP/s "
                     f"x {r['flop_per_jet'] / 1e3:.1f} kFLOP/jet")
    row("baseline: numpy astype(float16), 4 columns", b["float16_cast_s"], n)
    for level, z in (b.get("zstd") or {}).items():
        row(f"baseline: zstd -{level} raw float32 ({z['bytes_per_jet']:.2f} B/jet)", z["seconds"], n)
    lines.append("")
    lines.append(f".aez size: {res['aez_bytes_per_jet']:.3f} B/jet (raw float32: 16)")
    for op in ("encode", "decode"):
        p = b[f"best_plain_{op}"]
        lines.append(f"best plain {op} loop: {p['library']}, batch {p['batch_size']}")
    lines.append("* jetzip's choice of backend here (the engine in the ratios; cpu_engine: the CPU's choice)")
    lines.append("ratios of rates (> 1: jetzip faster):")
    for k, v in res["ratios"].items():
        lines.append(f"  {k:45s} {v:7.2f}x")
    rp = res["reduced_precision"]
    lines.append("")
    lines.append("reduced precision (decoded residual std; bf16 used only if within 5% of float32):")
    for k in rp["float32"]:
        lines.append(f"  {k:4s} float32 {rp['float32'][k]:.3e}  bf16 {rp['bf16'][k]:.3e}")
    lines.append(f"  bf16 worst std ratio {rp['bf16_worst_std_ratio']:.2f} -> "
                 f"{'acceptable' if rp['bf16_acceptable'] else 'not acceptable, stays off'}")
    return "\n".join(lines)
