"""``jetzip bench``: throughput and memory of jetzip against what the machine and plain loops allow.

In one run, on the same jets and the same machine (the machines differ: only figures of one run
are compared with each other):

- **read only**: the input's jet columns read with uproot alone (one thread, and a pool of every
  core), the floor under any file-to-file figure;
- **end to end**: compress (ROOT -> .aez) and decompress (.aez -> ROOT, .aez -> HDF5), each in a
  fresh subprocess so its peak resident memory is its own; jets/s and MB/s;
- **model only**, on the first ``MODEL_JETS`` (500k) jets, already normalized in memory:
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

Every figure above is timed round robin (one run of each per round, ``--repeats`` rounds, the
best kept), so that on a machine shared with other work all candidates see the same periods of
load; the ratios compare figures of the same rounds.

Speed targets are judged from this output, never from timed unit tests.
"""
from __future__ import annotations

from functools import partial

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
MODEL_JETS = 500_000  # jets for the in-memory model-only timings (all of them when fewer)


def _best_of(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _run_child(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line; add its peak RSS."""
    # Peak RSS from /proc (VmHWM, this process's own memory): ru_maxrss of a fresh interpreter
    # starts at the RSS of the parent when it forked, here the benchmark holding its jets.
    wrapper = (
        "import json, resource, sys, time\n" + code +
        "\ntry:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "    result['peak_rss_mb'] = int(hwm.split()[1]) / 1024\n"
        "except (OSError, IndexError):\n"
        "    result['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
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

def _add_read_only(clock: "_Clock", path: str) -> dict | None:
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

    def read(pool) -> None:
        kw = {} if pool is None else {"decompression_executor": pool, "interpretation_executor": pool}
        with uproot.open(path, **kw) as f:
            f[info.tree].arrays(branches, library="np")

    def read_pooled() -> None:
        with ThreadPoolExecutor(threads) as pool:  # a new pool each time: uproot shuts it down on close
            read(pool)

    clock.add("read/one_thread", lambda: read(None))
    clock.add("read/pool", read_pooled)
    return {"branches": branches, "pool_threads": threads}


def _read_only_result(info: dict | None, best: dict[str, float]) -> dict | None:
    if info is None:
        return None
    info.update(one_thread_s=best["read/one_thread"], pool_s=best["read/pool"])
    info["best_s"] = min(info["one_thread_s"], info["pool_s"])
    return info


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


class _Clock:
    """Timings taken round robin: every candidate once per round, the best of the rounds kept.

    On a shared machine the load drifts over minutes; timing each candidate's repeats back to
    back would compare candidates measured under different loads. Interleaved, every candidate
    sees every period of the run.
    """

    def __init__(self) -> None:
        self.cands: dict[str, Callable[[], Any]] = {}
        self.warm: list[Callable[[], Any]] = []
        self.best: dict[str, float] = {}
        self.results: dict[str, dict] = {}  # what the best run of a candidate returned, if a dict

    def add(self, name: str, fn: Callable[[], Any], warm: Callable[[], Any] | None = None) -> None:
        self.cands[name] = fn
        if warm is not None:
            self.warm.append(warm)

    def run(self, repeats: int, log: Callable[[str], None] = lambda m: None) -> dict[str, float]:
        for w in self.warm:
            w()
        self.best = {k: float("inf") for k in self.cands}
        for r in range(repeats):
            log(f"round {r + 1} of {repeats} ({len(self.cands)} timings)")
            for k, fn in self.cands.items():
                t0 = time.perf_counter()
                got = fn()
                sec = time.perf_counter() - t0
                if isinstance(got, dict) and "seconds" in got:  # a child process timed itself
                    sec = got["seconds"]
                if sec < self.best[k]:
                    self.best[k] = sec
                    if isinstance(got, dict):
                        self.results[k] = got
        return self.best


def _add_baselines(clock: _Clock, model, x: np.ndarray, z: np.ndarray, device) -> None:
    """Plain loops (torch on `device`, numpy on the CPU) and the thesis one-tensor call."""
    import torch

    net = model.network().to(device)
    tx, tz = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(z))

    def under_inference(fn):
        def call():
            with torch.inference_mode():
                return fn()
        return call

    if device.type == "cpu":
        clock.add("one_tensor/encode", under_inference(lambda: net.encode(tx)))
        clock.add("one_tensor/decode", under_inference(lambda: net.decode(tz)))
    else:
        clock.add("one_tensor/encode", under_inference(lambda: net.encode(tx.to(device)).cpu()))
        clock.add("one_tensor/decode", under_inference(lambda: net.decode(tz.to(device)).cpu()))
    for bs in BASELINE_BATCHES:
        clock.add(f"plain/torch/{bs}/encode",
                  under_inference(partial(plain_torch, net, "encoder", tx, bs, device)))
        clock.add(f"plain/torch/{bs}/decode",
                  under_inference(partial(plain_torch, net, "decoder", tz, bs, device)))
        clock.add(f"plain/numpy/{bs}/encode", partial(plain_numpy, model, "encoder", x, bs))
        clock.add(f"plain/numpy/{bs}/decode", partial(plain_numpy, model, "decoder", z, bs))


def _baselines_result(best: dict[str, float]) -> dict:
    out: dict[str, Any] = {"torch": {}, "numpy": {}}
    for op in ("encode", "decode"):
        out[f"one_tensor_{op}_s"] = best[f"one_tensor/{op}"]
    for lib in ("torch", "numpy"):
        for bs in BASELINE_BATCHES:
            out[lib][str(bs)] = {"encode_s": best[f"plain/{lib}/{bs}/encode"],
                                 "decode_s": best[f"plain/{lib}/{bs}/decode"]}
    for op in ("encode", "decode"):
        cands = [(v[f"{op}_s"], lib, int(bs)) for lib in ("torch", "numpy") for bs, v in out[lib].items()]
        sec, lib, bs = min(cands)
        out[f"best_plain_{op}"] = {"seconds": sec, "library": lib, "batch_size": bs}
    return out


def _add_engines(clock: _Clock, model, x: np.ndarray, z: np.ndarray, device, batch_size: int | None) -> dict:
    """jetzip's engine on normalized inputs (run), per backend; returns what is not a timing."""
    from .engine import DEFAULT_BATCH_SIZE, Decoder, Encoder, choose_backend

    bs = batch_size or DEFAULT_BATCH_SIZE
    backends = ["numpy", "torch"] + (["cuda"] if device.type == "cuda" else [])
    info: dict[str, Any] = {"batch_size": bs, "chosen": choose_backend(device.type),
                            "cpu_chosen": choose_backend("cpu")}
    for bk in backends:
        dev, backend = (str(device), None) if bk == "cuda" else ("cpu", bk)
        enc = Encoder(model, dev, bs, backend=backend)
        dec = Decoder(model, dev, bs, backend=backend)
        warm = len(x) if bk == "cuda" else min(len(x), 4 * bs * enc.workers)
        clock.add(f"engine/{bk}/encode", partial(enc.run, x), warm=partial(enc.run, x[:warm]))
        clock.add(f"engine/{bk}/decode", partial(dec.run, z), warm=partial(dec.run, z[:warm]))
        info[bk] = {"workers": enc.workers}
        if bk == "cuda":
            info[bk]["gpu_batch_size"] = enc.engine.batch_size
    return info


def _engine_result(info: dict, best: dict[str, float]) -> dict:
    for bk in ("numpy", "torch", "cuda"):
        if bk in info:
            info[bk]["encode_s"] = best[f"engine/{bk}/encode"]
            info[bk]["decode_s"] = best[f"engine/{bk}/decode"]
    return info


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


def _add_roofline(clock: _Clock, model, workers: int, n_jets: int) -> list[dict]:
    """The layer matrix multiplies alone, at the best measured speed (see the module docstring).

    Candidates: numpy and torch, each on `workers` engine workers at once (one BLAS thread each)
    for batch sizes ROOFLINE_BATCHES, and each with its own threads on batches of 65536.
    """
    import torch

    from .engine import single_thread_blas, worker_pool

    cands = []
    for part in ("encoder", "decoder"):
        layers = _layers(model, part)
        for lib, chain in (("numpy", _matmul_chain_numpy), ("torch", _matmul_chain_torch)):
            for bs in ROOFLINE_BATCHES:
                per_worker = max(1, -(-n_jets // (bs * workers)))

                def parallel(chain=chain, layers=layers, bs=bs, per_worker=per_worker):
                    with single_thread_blas():
                        fs = [worker_pool(workers).submit(chain, layers, bs, per_worker) for _ in range(workers)]
                        for f in fs:
                            f.result()

                name = f"roof/{part}/{lib}/{bs}/workers"
                clock.add(name, parallel, warm=parallel)
                cands.append({"name": name, "part": part, "library": lib, "threads": f"{workers} workers x 1",
                              "batch_size": bs, "jets": per_worker * bs * workers})
            bs = 65536
            n_batches = max(1, -(-n_jets // bs))
            name = f"roof/{part}/{lib}/{bs}/own"
            clock.add(name, partial(chain, layers, 65536, n_batches), warm=partial(chain, layers, 65536, 1))
            threads = torch.get_num_threads() if lib == "torch" else "BLAS default"
            cands.append({"name": name, "part": part, "library": lib, "threads": str(threads),
                          "batch_size": bs, "jets": n_batches * bs})
    return cands


def _roofline_result(model, cands: list[dict], best: dict[str, float]) -> dict:
    out: dict[str, Any] = {"candidates": []}
    for part in ("encoder", "decoder"):
        flop = flop_per_jet(model, part)
        top = None
        for c in cands:
            if c["part"] != part:
                continue
            sec = best[c["name"]]
            cand = {k: v for k, v in c.items() if k not in ("name", "jets")}
            cand.update(jets_per_s=c["jets"] / sec, gflops=c["jets"] * flop / sec / 1e9)
            out["candidates"].append(cand)
            top = cand if top is None or cand["jets_per_s"] > top["jets_per_s"] else top
        assert top is not None, f"no roofline candidate for the {part}"
        out["encode" if part == "encoder" else "decode"] = {
            "flop_per_jet": flop, **{k: top[k] for k in ("library", "threads", "batch_size", "jets_per_s", "gflops")}}
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

                def chain(n_batches=n_batches, ws=ws, ins=ins, outs=outs):
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
    result: dict[str, Any] = dict(out)
    result["bf16_worst_std_ratio"] = worst
    result["bf16_acceptable"] = worst <= 1.05
    return result


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
    aez, back_root, back_h5 = (str(work / f) for f in ("bench.aez", "bench_back.root", "bench_back.h5"))
    m = min(n, model_jets)
    res["model_jets"] = m
    x = the_model.normalization.apply(frame[:m])
    z = Encoder(the_model, "cpu").run(x)
    # Everything timed round robin (see _Clock): reading, file to file, model only, roofline.
    clock = _Clock()
    read_info = _add_read_only(clock, input)
    dev_name = str(dev)
    clock.add("compress", lambda: _end_to_end_once("compress", input, aez, model_path, dev_name, batch_size))
    clock.add("decompress_root",
              lambda: _end_to_end_once("decompress", aez, back_root, model_path, dev_name, batch_size))
    clock.add("decompress_hdf5",
              lambda: _end_to_end_once("decompress", aez, back_h5, model_path, dev_name, batch_size))
    engine_info = _add_engines(clock, the_model, x, z, dev, batch_size)
    _add_baselines(clock, the_model, x, z, dev)
    roof_cands = _add_roofline(clock, the_model, engine_info["numpy"]["workers"], m)
    log(f"timing, interleaved: read only, compress/decompress ({n} jets), model only ({m} jets), roofline")
    best = clock.run(repeats, log)
    res["read_only"] = _read_only_result(read_info, best)
    for key in ("compress", "decompress_root", "decompress_hdf5"):
        r = res[key] = clock.results[key]
        r["jets_per_s"] = n / r["seconds"]
        r["input_mb_per_s"] = (size_mb if key == "compress" else os.path.getsize(aez) / 1e6) / r["seconds"]
    res["aez_bytes_per_jet"] = os.path.getsize(aez) / n
    res["engine"] = _engine_result(engine_info, best)
    res["baselines"] = _baselines_result(best)
    res["roofline"] = _roofline_result(the_model, roof_cands, best)
    if dev.type == "cuda":
        log("roofline on the GPU")
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
