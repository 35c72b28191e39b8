#!/usr/bin/env python3
"""Fuzz the .aez and model-file readers with mutated copies of valid files.

Why: jetzip promises that reading a file never executes code, never allocates from an
unchecked size field, never hangs and never crashes: every damaged file ends in a
``JetzipError``, and no change to a file's bytes decodes silently into different jets.
``tests/test_fuzz.py`` checks this on a few thousand cases in CI; this script runs the same
oracle on as many as you like.

It trains a tiny model on synthetic jets, writes a NanoAOD-like ROOT file, compresses it
three ways (two chunks with the embedded decoder; with kept event-level branches; float16
latents without the decoder), then mutates those files and the model file: bit flips, byte
overwrites, inserted and deleted byte runs, overwritten record lengths, appended and
truncated bytes, and random combinations. Each mutant is read in full in this process
(every record, every chunk, the embedded decoder) and counted as:

- rejected: a JetzipError (the expected outcome);
- decoded identical: the mutant equals the original (or, for a model file, differs only
  in the minor version, which sits outside every CRC) and decodes to the original's content;
- undetected corruption: a changed file decoded without error;
- crash: any other exception (the first few tracebacks are printed);
- hang: a case that took longer than ``--timeout-per-case`` (stuck ones are interrupted).

The exit code is 1 if there was any undetected corruption, crash or hang.

Example:
    python examples/fuzz_aez.py --cases 3000 --seed 1
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

import jetzip
from jetzip import container
from jetzip import synthetic
from jetzip.aez import open_aez

PREAMBLE = container.PREAMBLE.size
HEAD, CRC = container.RECORD_HEAD.size, container.CRC.size
LENGTHS = [0, 1, 3, 15, 16, 17, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1]
SHOWN_TRACEBACKS = 5


# --- valid files ----------------------------------------------------------------------------

def synthetic_jets(n: int, seed: int) -> dict[str, np.ndarray]:
    """LHC-like jets: falling pt from 5 GeV, |eta| < 4.7, uniform phi, some massless."""
    return synthetic.jets(n, seed)


def energy(j: dict[str, np.ndarray]) -> np.ndarray:
    return synthetic.energy(j["pt"], j["eta"], j["m"]).astype(np.float64)


def write_nanoaod(path: Path, n_events: int, seed: int) -> None:
    """Events tree: nJet, jagged Jet_pt/eta/phi/mass, and event-level run, event, MET_pt."""
    import awkward as ak
    import uproot

    rng = np.random.default_rng(seed + 1)
    counts = rng.poisson(5.0, n_events).astype(np.int64)
    counts[rng.random(n_events) < 0.1] = 0
    j = synthetic_jets(int(counts.sum()), seed)
    with uproot.recreate(path) as f:
        types = {"run": np.uint32, "event": np.uint64, "MET_pt": np.float32}
        types.update({f"Jet_{k}": "var * float32" for k in ("pt", "eta", "phi", "mass")})
        tree = f.mktree("Events", types, counter_name=lambda _: "nJet")
        data = {f"Jet_{k}": ak.unflatten(j[kk], counts)
                for k, kk in (("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "m"))}
        data.update(run=np.ones(n_events, np.uint32), event=np.arange(n_events, dtype=np.uint64),
                    MET_pt=rng.uniform(0, 100, n_events).astype(np.float32))
        tree.extend(data)


def build_files(work: Path, seed: int) -> dict[str, bytes]:
    """Train a tiny model, compress a small file three ways; return each file's bytes."""
    import torch

    from jetzip.training import TrainOptions, train_frames

    torch.manual_seed(seed)
    j = synthetic_jets(20_000, seed)
    frame = np.column_stack([energy(j), j["pt"], j["eta"], j["phi"]]).astype(np.float64)
    model = train_frames(frame, TrainOptions(arch="32,32,16:3", epochs=2, batch_size=512,
                                             lr_max=5e-3, seed=seed, device="cpu"))
    model_path = work / "tiny.jzm"
    model.save(model_path)
    nano = work / "nano.root"
    write_nanoaod(nano, n_events=300, seed=seed)  # ~1400 jets: two chunks of <= 1024
    variants = {"aez": {}, "keep": {"keep_branches": ["run", "event", "MET_pt"]},
                "f16": {"latent_dtype": "float16", "embed_model": False},
                "bnd": {"error_bound": "1e-3"}}
    files = {}
    for name, kw in variants.items():
        out = work / f"{name}.aez"
        jetzip.compress(nano, out, model=model_path, chunk_jets=1024, device="cpu", **kw)
        files[name] = out.read_bytes()
    files["model"] = model_path.read_bytes()
    return files


def records(data: bytes) -> list[tuple[str, int, int]]:
    """(tag, offset, payload length) of each record of a valid file."""
    out, off = [], PREAMBLE
    while off < len(data):
        tag, n = container.RECORD_HEAD.unpack_from(data, off)
        out.append((tag.decode("ascii"), off, n))
        off += HEAD + n + CRC
    assert off == len(data)
    return out


# --- reading ----------------------------------------------------------------------------------

def read_fully(name: str, path: Path) -> Any:
    """Everything a reader can be asked for, as comparable plain values."""
    if name == "model":
        m = jetzip.load_model(path)
        return (json.dumps(m.header(), sort_keys=True, default=str),
                {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in m.weights.items()})
    arrays: dict[str, Any] = {}
    with open_aez(path) as aez:
        tail = aez.verify()
        if "DECW" in aez.side:  # the embedded decoder's weights (running it adds nothing here)
            arrays.update({f"decoder.{k}": v for k, v in aez.codec(device="cpu").model.weights.items()})
        from jetzip.codecs import codec_class

        if not any(codec_class(c["id"]).summary(c).get("model") for c in aez.header.codecs):
            # no network to run: every decoded value of every collection
            parts = [chunk for _, chunk in aez.decoded(aez.codecs(device="cpu"), carried=False)]
            arrays.update({f"decoded.{k}": np.concatenate([p.columns[k] for p in parts])
                           for k in parts[0].columns} if parts else {})
        carried: dict[str, list] = {}
        for chunk in aez.chunks():  # every carried branch, as stored
            for k, v in chunk.carried_arrays().items():
                carried.setdefault(k, []).append(np.asarray(v) if isinstance(v, np.ndarray) else str(v.to_list()))
        arrays.update({f"carried.{k}": np.concatenate(v) if isinstance(v[0], np.ndarray) else np.array(v)
                       for k, v in carried.items()})
    r = jetzip.read_aez(path)
    arrays.update({"latents": r.get("latents"), "counts": r["counts"],
                   **{f"kept.{k}": v for k, v in r["kept"].items()},
                   **{f"jet_kept.{k}": v for k, v in r["jet_kept"].items()}})
    return (json.dumps(r["header"], sort_keys=True), tail,
            {k: None if v is None else (v.dtype.str, v.shape, v.tobytes()) for k, v in arrays.items()})


# --- building valid records (for crafted files) -------------------------------------------------

def major_of(data: bytes) -> int:
    return struct.unpack_from("<H", data, 8)[0]


def seed_of(data: bytes) -> int:
    """The CRC seed of the records after HEAD (format >= 3: the file identity)."""
    if major_of(data) < 3:
        return 0
    _, off, n = records(data)[0]
    return zlib.crc32(data[off + HEAD:off + HEAD + n])


def record(tag: str, payload: bytes, seed: int = 0) -> bytes:
    """A record with a correct CRC (started at `seed`), as a writer would produce it."""
    head = container.RECORD_HEAD.pack(tag.encode("ascii"), len(payload))
    return head + payload + container.CRC.pack(zlib.crc32(payload, zlib.crc32(head, seed)))


def reseal(data: bytes) -> bytes:
    """Every record's CRC recomputed with the file's seeds (after a record was replaced)."""
    out = bytearray(data[:PREAMBLE])
    seed = 0
    for i, (tag, off, n) in enumerate(records(data)):
        payload = data[off + HEAD:off + HEAD + n]
        out += record(tag, payload, seed)
        if i == 0 and major_of(data) >= 3:
            seed = zlib.crc32(payload)
    return bytes(out)


def head_payload(header: dict | bytes) -> bytes:
    """A format 3 HEAD payload for a JSON header (or raw bytes in its place)."""
    import lzma

    from jetzip import aez, carry

    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<BI", aez.HEAD_LZMA, len(raw)) + lzma.compress(
        raw, format=lzma.FORMAT_RAW, filters=carry.lzma_filters(aez.HEAD_LZMA_PRESET, len(raw)))


def header_of(data: bytes) -> dict:
    """The JSON header of a format 3 file's bytes."""
    import lzma

    from jetzip import aez, carry

    _, off, n = records(data)[0]
    payload = data[off + HEAD:off + HEAD + n]
    (size,) = struct.unpack_from("<I", payload, 1)
    raw = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=carry.lzma_filters(
        aez.HEAD_LZMA_PRESET, size)).decompress(payload[5:])
    return json.loads(raw)


class Stuck(BaseException):
    """Raised by the alarm in a case that runs far past its time limit."""


@contextlib.contextmanager
def alarm(seconds: float):
    if not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise Stuck()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def write(path: Path, data: bytes) -> None:
    """Replace a file (unlinking first: truncating in place is slow on some filesystems)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    with open(path, "wb") as f:
        f.write(data)


# --- mutations --------------------------------------------------------------------------------

def position(rng: random.Random, buf: bytearray, recs: list, end_ok: bool = False) -> int:
    """Anywhere, or (half the time) near a record's start: tag, length, first payload bytes."""
    size = len(buf) + (1 if end_ok else 0)
    if rng.random() < 0.5 or not recs:
        return rng.randrange(size)
    _, off, _ = rng.choice(recs)
    return min(max(off + rng.randint(-6, 24), 0), size - 1)


def flip(rng, buf, recs):
    parts = []
    for _ in range(rng.randint(1, 3)):
        i, bit = position(rng, buf, recs), rng.randrange(8)
        buf[i] ^= 1 << bit
        parts.append(f"flip bit {bit} of byte {i}")
    return "; ".join(parts)


def overwrite(rng, buf, recs):
    i = position(rng, buf, recs)
    run = rng.randbytes(rng.randint(1, 16))[:len(buf) - i]
    buf[i:i + len(run)] = run
    return f"overwrite bytes {i}..{i + len(run) - 1} with {run.hex()}"


def insert(rng, buf, recs):
    i = position(rng, buf, recs, end_ok=True)
    run = rng.randbytes(rng.randint(1, 64))
    buf[i:i] = run
    return f"insert {run.hex()} at {i}"


def delete(rng, buf, recs):
    i, n = position(rng, buf, recs), rng.randint(1, 64)
    del buf[i:i + n]
    return f"delete {n} bytes at {i}"


def length(rng, buf, recs):
    index = rng.randrange(len(recs))
    tag, off, n = recs[index]
    r = rng.random()
    value = (rng.choice(LENGTHS) if r < 0.4 else rng.randrange(2**64) if r < 0.6
             else min(max(n + rng.randint(-64, 64), 0), 2**64 - 1))
    if off + HEAD <= len(buf):
        buf[off + 4:off + HEAD] = struct.pack("<Q", value)
    return f"set the length of record {index} ({tag}, {n} bytes) to {value}"


def append(rng, buf, recs):
    run = rng.randbytes(rng.randint(1, 32))
    buf += run
    return f"append {run.hex()}"


def truncate(rng, buf, recs):
    n = rng.randrange(len(buf)) if buf else 0
    del buf[n:]
    return f"truncate to {n} bytes"


MUTATIONS: dict[str, Callable] = {"flip": flip, "overwrite": overwrite, "insert": insert,
                                  "delete": delete, "length": length, "append": append,
                                  "truncate": truncate}


def mutate(rng: random.Random, data: bytes, recs: list) -> tuple[str, bytes, str]:
    """(kind, mutant, description): one mutation, or 30 % of the time 2-5 of them."""
    buf = bytearray(data)
    if rng.random() < 0.3:
        kinds = [rng.choice(list(MUTATIONS)) for _ in range(rng.randint(2, 5))]
        kind = "combination"
    else:
        kinds = [rng.choice(list(MUTATIONS))]
        kind = kinds[0]
    described = []
    for k in kinds:
        if not buf:  # an earlier step deleted everything; nothing left to mutate
            break
        described.append(MUTATIONS[k](rng, buf, recs))
    return kind, bytes(buf), "; ".join(described)


# --- the run ----------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="mutants to read (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the files and the mutations")
    parser.add_argument("--timeout-per-case", type=float, default=2.0, metavar="SECONDS",
                        help="a case slower than this counts as a hang (default 2)")
    parser.add_argument("--save-failures", metavar="DIR",
                        help="write each crashing, hanging or undetected mutant here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="jetzip-fuzz-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        files = build_files(work, args.seed)
        print("valid files: " + ", ".join(f"{k} {len(v)} bytes" for k, v in files.items())
              + f" (built in {time.perf_counter() - t0:.1f} s)", flush=True)
        recs = {name: records(data) for name, data in files.items()}
        references = {}
        for name, data in files.items():
            write(work / f"ref-{name}", data)
            references[name] = read_fully(name, work / f"ref-{name}")

        rng = random.Random(args.seed)
        counts = collections.Counter()
        by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        tracebacks: list[str] = []
        failures: list[tuple[str, str, bytes]] = []
        slowest = (0.0, "")
        names = list(files)
        t0 = time.perf_counter()
        for case in range(args.cases):
            name = rng.choice(names)
            original = files[name]
            kind, mutant, described = mutate(rng, original, recs[name])
            path = work / f"mutant-{name}"
            write(path, mutant)
            what = f"case {case}: {name}: {described}"
            start = time.perf_counter()
            outcome, detail = "", ""
            try:
                with alarm(max(5 * args.timeout_per_case, args.timeout_per_case + 5)):
                    result = read_fully(name, path)
                outcome = "accepted"
            except jetzip.JetzipError:
                outcome = "rejected"
            except Stuck:
                outcome = "hang"
            except Exception:  # noqa: BLE001 - every other exception is the bug being hunted
                outcome, detail = "crash", traceback.format_exc()
            seconds = time.perf_counter() - start
            if seconds > slowest[0]:
                slowest = (seconds, what)
            if seconds > args.timeout_per_case:
                outcome = "hang"
            if outcome == "accepted":
                minor_only = (name == "model" and len(mutant) == len(original)
                              and mutant[:10] == original[:10] and mutant[12:] == original[12:])
                if mutant != original and not minor_only:
                    outcome = "undetected corruption"
                elif result != references[name]:
                    outcome = "undetected corruption"
                else:
                    outcome = "decoded identical"
            elif outcome == "rejected" and mutant == original:
                outcome = "crash"
                detail = f"{what}: the unchanged file was refused\n"
            counts[outcome] += 1
            by_kind[kind][outcome] += 1
            if outcome in ("crash", "hang", "undetected corruption"):
                if len(tracebacks) < SHOWN_TRACEBACKS:
                    tracebacks.append(f"--- {outcome}, {what}\n{detail or ''}")
                failures.append((outcome, name, mutant))
        elapsed = time.perf_counter() - t0

    if args.save_failures and failures:
        out = Path(args.save_failures)
        out.mkdir(parents=True, exist_ok=True)
        for i, (outcome, name, mutant) in enumerate(failures):
            suffix = ".jzm" if name == "model" else ".aez"
            (out / f"{i:05d}-{outcome.replace(' ', '-')}-{name}{suffix}").write_bytes(mutant)
        print(f"wrote {len(failures)} failing mutants to {out}")

    for text in tracebacks:
        print(text, file=sys.stderr)
    outcomes = ["rejected", "decoded identical", "undetected corruption", "crash", "hang"]
    print(f"\nby mutation kind ({', '.join(outcomes)}):")
    for kind in sorted(by_kind):
        print(f"  {kind:12s} " + " ".join(f"{by_kind[kind][o]:7d}" for o in outcomes))
    print()
    for label, value in [("cases", args.cases), ("rejected with JetzipError", counts["rejected"]),
                         ("decoded identical", counts["decoded identical"]),
                         ("undetected corruptions", counts["undetected corruption"]),
                         ("crashes", counts["crash"]),
                         (f"hangs (> {args.timeout_per_case:g} s)", counts["hang"])]:
        print(f"{label + ':':28s} {value}")
    print(f"time: {elapsed:.1f} s, {1e3 * elapsed / max(args.cases, 1):.2f} ms per case; "
          f"slowest case {1e3 * slowest[0]:.1f} ms ({slowest[1][:100]})")
    bad = counts["undetected corruption"] + counts["crash"] + counts["hang"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
