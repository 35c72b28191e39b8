"""Damaged and hostile .aez and model files: always a FormatError, never a crash, hang or wrong jets.

The guarantee under test: reading a file never executes code, never allocates from an unchecked
size field, never hangs and never crashes. Every malformed input ends in a JetzipError (a
FormatError for a damaged file), and any change to a file's bytes is detected instead of being
decoded into different jets. A mutant may only decode if its bytes equal the original's, with one
exception: the minor version of a *model* file sits in the preamble, outside every CRC, and model
files carry no second copy of it, so a changed minor there is accepted with identical weights
(.aez headers repeat it and are checked against it).

Valid files are built once per module and read into memory; each mutant is written to a file
and read in full (every record, every chunk, the embedded decoder).
``examples/fuzz_aez.py`` runs the same oracle on many more cases.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import struct
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import jetzip
from jetzip import container
from jetzip.aez import open_aez

import jetfactory
from conftest import LOOSE, REPO, invoke

# The standalone fuzzer's oracle helpers: one definition for the CI fuzz and examples/fuzz_aez.py.
_spec = importlib.util.spec_from_file_location("fuzz_aez", REPO / "examples" / "fuzz_aez.py")
fuzz_aez = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_aez)
write, records, read_fully = fuzz_aez.write, fuzz_aez.records, fuzz_aez.read_fully
reseal, head_payload, header_of, seed_of = fuzz_aez.reseal, fuzz_aez.head_payload, fuzz_aez.header_of, fuzz_aez.seed_of

PREAMBLE = container.PREAMBLE.size  # 12: magic, major, minor
MINOR_FIELD = slice(10, 12)
AEZ_FILES = ("aez", "keep", "f16", "bnd")
ALL_FILES = (*AEZ_FILES, "model")
CASE_SECONDS = 10.0  # a case taking longer is a hang (the readers need milliseconds)


class Hang(Exception):
    """A read ran past CASE_SECONDS."""


# --- valid files, read once ---------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def originals(small_model_path, work) -> dict[str, bytes]:
    """The bytes of valid files: .aez with 2 chunks, with kept branches, float16 without
    an embedded decoder, the error-bounded codec, and the model file."""
    nano = work / "nano.root"
    # ~270 jets in 3 chunks of <= 100: every truncation offset is read (cost ~ size^2), so small
    jetfactory.write_nanoaod(nano, n_events=60, seed=5)
    variants = {
        "aez": {"latent_tolerance": LOOSE},  # every jet a latent (the others store some verbatim)
        "keep": {"keep_branches": ["run", "event", "MET_pt"]},
        "f16": {"latent_dtype": "float16", "embed_model": False},
        "bnd": {"error_bound": "1e-3"},
    }
    out = {}
    for name, kw in variants.items():
        path = work / f"{name}.aez"
        jetzip.compress(nano, path, model=small_model_path, chunk_jets=100, **kw)
        out[name] = path.read_bytes()
    out["model"] = Path(small_model_path).read_bytes()
    return out


@pytest.fixture(scope="module")
def references(originals, work) -> dict[str, Any]:
    """What each valid file decodes to, to compare mutants that are accepted."""
    refs = {}
    for name, data in originals.items():
        path = work / f"ref-{name}"
        write(path, data)
        refs[name] = read_fully(name, path)
    chunks = [r for r in records(originals["aez"]) if r[0] == "CHNK"]
    assert len(chunks) >= 2, "the fixture .aez must hold several chunks"
    return refs


def record(tag: str, payload: bytes, seed: int = 0) -> bytes:
    """A record with a correct CRC, as a writer would produce it."""
    return fuzz_aez.record(tag, payload, seed)


def payload_of(data: bytes, index: int) -> bytes:
    _, off, n = records(data)[index]
    return data[off + container.RECORD_HEAD.size: off + container.RECORD_HEAD.size + n]


def replace_record(data: bytes, index: int, payload: bytes, tag: str | None = None) -> bytes:
    """`data` with record `index` replaced, every CRC correct (a replaced header changes the
    file identity that seeds the later records' CRCs: they are resealed)."""
    old_tag, off, n = records(data)[index]
    end = off + container.RECORD_HEAD.size + n + container.CRC.size
    return reseal(data[:off] + record(tag or old_tag, payload) + data[end:])


# --- reading in full, and the oracle -------------------------------------------------------

@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """Turn a hang into a Hang exception (SIGALRM; a no-op off the main thread or on Windows)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"{what}: still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(fn: Callable[[], Any], what: str) -> tuple[bool, Any]:
    """(True, result) or (False, the JetzipError); anything else fails the test, naming `what`."""
    try:
        with time_limit(CASE_SECONDS, what):
            return True, fn()
    except jetzip.JetzipError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"{what}: the error must be one line: {message!r}"
        return False, exc
    except Exception as exc:  # MemoryError, struct.error, KeyError, zlib.error, Hang, ...
        raise AssertionError(f"{what}: {type(exc).__name__} instead of a JetzipError: {exc}") from exc


def check_mutant(name: str, mutant: bytes, original: bytes, reference: Any, path: Path,
                 what: str) -> bool:
    """The oracle; returns whether the mutant was accepted."""
    write(path, mutant)
    ok, result = attempt(lambda: read_fully(name, path), what)
    if mutant == original:
        assert ok, f"{what}: the unchanged file was refused: {result}"
    elif ok and not (name == "model" and len(mutant) == len(original)
                     and mutant[:MINOR_FIELD.start] == original[:MINOR_FIELD.start]
                     and mutant[MINOR_FIELD.stop:] == original[MINOR_FIELD.stop:]):
        raise AssertionError(f"{what}: undetected corruption: the damaged {name} file was accepted")
    if ok:
        assert result == reference, f"{what}: decoded to something other than the original"
    return ok


# --- truncation at every offset -----------------------------------------------------------

@pytest.mark.parametrize("name", ALL_FILES)
def test_every_truncation_is_refused(name, originals, work):
    """Cut the file at each byte offset: always a JetzipError, never success, never a crash.

    read_aez and verify share the chunk reader, so only the main .aez goes through both. The
    main .aez and the model are cut at every offset; the other variants (kept branches,
    float16, bounded codec) at every offset within 32 bytes of a record boundary (the preamble,
    record heads, CRCs) and at every 11th offset inside payloads, where a cut meets the same
    length check as in the main file (every read costs the size of the file: all offsets of
    all variants took a minute and a half on a loaded CI machine).
    """
    data = originals[name]
    path = work / f"trunc-{name}"
    write(path, data)
    offsets = range(len(data) - 1, -1, -1)
    if name not in ("aez", "model"):
        edges = [0, container.PREAMBLE.size, len(data)]
        for _, off, n in records(data):
            edges += [off, off + container.RECORD_HEAD.size, off + container.RECORD_HEAD.size + n]
        near = {k for e in edges for k in range(e - 32, e + 33)}
        offsets = [k for k in offsets if k in near or k % 11 == 0]
    for n in offsets:  # shrink one file in place: fast on any filesystem
        os.truncate(path, n)
        what = f"{name} truncated to {n} of {len(data)} bytes"
        if name == "model":
            ok, _ = attempt(lambda: jetzip.load_model(path), what)
            assert not ok, f"{what}: accepted"
            continue
        ok, _ = attempt(lambda: jetzip.read_aez(path), what)
        assert not ok, f"{what}: accepted by read_aez"
        if name != "aez":
            continue

        def verify():
            with open_aez(path) as aez:
                return aez.verify()
        ok, _ = attempt(verify, what)
        assert not ok, f"{what}: accepted by verify"


# --- random mutations (hypothesis) --------------------------------------------------------

LENGTHS = [0, 1, 3, 15, 16, 17, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1]
position = st.one_of(  # anywhere, or near a record's start (tag, length, first payload bytes)
    st.tuples(st.just("abs"), st.integers(0, 1 << 20)),
    st.tuples(st.just("rec"), st.integers(0, 63), st.integers(-6, 24)),
)
flip = st.tuples(st.just("flip"), position, st.integers(0, 7))
overwrite = st.tuples(st.just("set"), position, st.binary(min_size=1, max_size=16))
insert = st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=64))
delete = st.tuples(st.just("delete"), position, st.integers(1, 64))
length = st.tuples(st.just("length"), st.integers(0, 63), st.one_of(
    st.sampled_from(LENGTHS), st.integers(0, 2**64 - 1), st.tuples(st.just("rel"), st.integers(-64, 64))))
append = st.tuples(st.just("append"), st.binary(min_size=1, max_size=32))
any_op = st.one_of(flip, overwrite, insert, delete, length, append)


def resolve(pos: tuple, data: bytes, recs: list, end_ok: bool = False) -> int:
    size = len(data) + (1 if end_ok else 0)
    if pos[0] == "abs":
        return pos[1] % size
    _, off, _ = recs[pos[1] % len(recs)]
    return min(max(off + pos[2], 0), size - 1)


def apply(ops: list[tuple], data: bytes) -> tuple[bytes, str]:
    """Apply mutation ops in turn (positions resolved against the original's records)."""
    recs = records(data)
    buf = bytearray(data)
    done = []
    for op in ops:
        kind = op[0]
        if kind == "flip":
            i = resolve(op[1], buf, recs)
            buf[i] ^= 1 << op[2]
            done.append(f"flip bit {op[2]} of byte {i}")
        elif kind == "set":
            i = resolve(op[1], buf, recs)
            run = op[2][:len(buf) - i]  # stays inside the file
            buf[i:i + len(run)] = run
            done.append(f"overwrite bytes {i}..{i + len(run) - 1} with {run.hex()}")
        elif kind == "insert":
            i = resolve(op[1], buf, recs, end_ok=True)
            buf[i:i] = op[2]
            done.append(f"insert {bytes(op[2]).hex()} at {i}")
        elif kind == "delete":
            i = resolve(op[1], buf, recs)
            del buf[i:i + op[2]]
            done.append(f"delete {op[2]} bytes at {i}")
        elif kind == "length":
            tag, off, n = recs[op[1] % len(recs)]
            value = op[2]
            if isinstance(value, tuple):
                value = min(max(n + value[1], 0), 2**64 - 1)
            if off + 12 <= len(buf):
                buf[off + 4:off + 12] = struct.pack("<Q", value)
            done.append(f"set the length of record {op[1] % len(recs)} ({tag}, {n} bytes) to {value}")
        elif kind == "append":
            buf += op[1]
            done.append(f"append {bytes(op[1]).hex()}")
    return bytes(buf), "; ".join(done)


FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run_ops(name, ops, originals, references, work, label):
    original = originals[name]
    mutant, described = apply(ops, original)
    note(described)
    check_mutant(name, mutant, original, references[name], work / f"{label}-{name}",
                 f"{name}: {described}")


@pytest.mark.parametrize("name", ALL_FILES)
@FUZZ
@given(ops=st.lists(flip, min_size=1, max_size=3))
def test_bit_flips_are_detected(name, ops, originals, references, work):
    run_ops(name, ops, originals, references, work, "flip")


@pytest.mark.parametrize("name", ALL_FILES)
@FUZZ
@given(ops=st.lists(overwrite, min_size=1, max_size=2))
def test_byte_overwrites_are_detected(name, ops, originals, references, work):
    run_ops(name, ops, originals, references, work, "set")


@pytest.mark.parametrize("name", ALL_FILES)
@FUZZ
@given(ops=st.lists(st.one_of(insert, delete, append), min_size=1, max_size=2))
def test_inserted_and_deleted_runs_are_detected(name, ops, originals, references, work):
    run_ops(name, ops, originals, references, work, "indel")


@pytest.mark.parametrize("name", ALL_FILES)
@FUZZ
@given(ops=st.lists(length, min_size=1, max_size=2))
def test_overwritten_length_fields_are_detected(name, ops, originals, references, work):
    run_ops(name, ops, originals, references, work, "length")


@pytest.mark.parametrize("name", ALL_FILES)
@settings(FUZZ, max_examples=150)
@given(ops=st.lists(any_op, min_size=2, max_size=5))
def test_combined_mutations_are_detected(name, ops, originals, references, work):
    run_ops(name, ops, originals, references, work, "combo")


def test_minor_version_change(originals, references, work):
    """.aez: the header repeats the version, so a changed minor is caught; model: accepted as is."""
    for name in ("aez", "model"):
        data = bytearray(originals[name])
        data[MINOR_FIELD] = (1).to_bytes(2, "little")
        write(work / f"minor-{name}", bytes(data))
        ok, result = attempt(lambda name=name: read_fully(name, work / f"minor-{name}"), name)
        if name == "aez":
            assert not ok and "format version 3.1" in str(result)
        else:
            assert ok and result == references[name]


# --- unknown records -----------------------------------------------------------------------

def test_unknown_critical_record_needs_newer_jetzip(originals, work):
    data = originals["aez"]
    i = next(k for k, r in enumerate(records(data)) if r[0] == "CHNK")
    bad = replace_record(data, i, payload_of(data, i), tag="QLAT")
    write(work / "qlat.aez", bad)
    with pytest.raises(jetzip.FormatError, match="newer jetzip"):
        jetzip.read_aez(work / "qlat.aez")

    model = originals["model"]
    i = next(k for k, r in enumerate(records(model)) if r[0] == "END0")
    _, off, _ = records(model)[i]
    write(work / "qlat.jzm", model[:off] + record("QLAT", b"{}") + model[off:])
    with pytest.raises(jetzip.FormatError, match="newer jetzip"):
        jetzip.load_model(work / "qlat.jzm")


@pytest.mark.parametrize("name", ALL_FILES)
def test_unknown_ancillary_record_is_skipped(name, originals, references, work):
    data = originals[name]
    last = "END0" if name == "model" else "TAIL"
    _, off, _ = next(r for r in records(data) if r[0] == last)
    extra = record("xtra", b"written by a later minor version \x00\xff", seed_of(data))
    path = work / f"xtra-{name}"
    write(path, data[:off] + extra + data[off:])
    assert read_fully(name, path) == references[name]


# --- hostile but well-formed headers (correct CRCs) ----------------------------------------

def deep(n: int) -> Any:
    return json.loads("[" * n + "]" * n)


def _v3(keys: str) -> list[Any]:
    """A path of a format 2 header in the format 3 header (codec: the first codec; source: the
    first table's description), as keys and list indices."""
    parts: list[Any] = keys.split(".")
    if parts[0] == "codec":
        parts[0:1] = ["codecs", 0]
    elif parts[0] == "source":
        parts[0:1] = ["tables", 0, "info"]
    return [int(p) if isinstance(p, str) and p.isdigit() else p for p in parts]


def set_path(keys: str, value: Any) -> Callable[[dict], Any]:
    def mutate(h: dict) -> None:
        *parents, last = _v3(keys)
        for k in parents:
            h = h[k]
        h[last] = value
    mutate.__name__ = f"{keys}={value!r}"[:60]
    return mutate


def delete_key(keys: str) -> Callable[[dict], Any]:
    def mutate(h: dict) -> None:
        *parents, last = _v3(keys)
        for k in parents:
            h = h[k]
        del h[last]
    return mutate


HOSTILE_HEADERS = {
    "not an object (list)": b"[1, 2, 3]",
    "not an object (string)": b'"HEAD"',
    "not an object (null)": b"null",
    "not JSON": b"\x00\xff{",
    "invalid UTF-8": b'{"a": "\xc3\x28"}',
    "nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
    "object nested 100000 deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "integer of 5000 digits": b'{"latent": {"dim": ' + b"9" * 5000 + b"}}",
    "latent.dim 10**12": set_path("codec.latent.dim", 10**12),
    "latent.dim -3": set_path("codec.latent.dim", -3),
    "latent.dim 0": set_path("codec.latent.dim", 0),
    "latent.dim Infinity": set_path("codec.latent.dim", float("inf")),
    "latent.dim NaN": set_path("codec.latent.dim", float("nan")),
    "latent.dim list": set_path("codec.latent.dim", [3]),
    "latent.dtype float64": set_path("codec.latent.dtype", "float64"),
    "latent.dtype object": set_path("codec.latent.dtype", "O"),
    "latent.dtype S10**9": set_path("codec.latent.dtype", "S1000000000"),
    "latent.dtype list": set_path("codec.latent.dtype", ["float32"]),
    "latent missing": delete_key("codec.latent"),
    "latent a string": set_path("codec.latent", "3"),
    "model a list": set_path("codec.model", [1, 2]),
    "arch.hidden 10**12": set_path("codec.model.arch.hidden", [10**12, 32, 16]),
    "arch.hidden negative": set_path("codec.model.arch.hidden", [-32, 32, 16]),
    "arch.hidden empty": set_path("codec.model.arch.hidden", []),
    "arch.hidden Infinity": set_path("codec.model.arch.hidden", [float("inf")]),
    "arch.hidden 10**400": set_path("codec.model.arch.hidden", [10**400]),
    "arch.hidden 1000 layers": set_path("codec.model.arch.hidden", [32] * 1000),
    "arch.hidden nested": set_path("codec.model.arch.hidden", deep(400)),
    "arch.latent 10**9": set_path("codec.model.arch.latent", 10**9),
    "arch.n_features 10**6": set_path("codec.model.arch.n_features", 10**6),
    "arch a string": set_path("codec.model.arch", "AE_3D_200"),
    "normalization shift 10**400": set_path("codec.normalization.shift", [10**400, 0, 0, 0]),
    "normalization scale zero": set_path("codec.normalization.scale", [0, 1, 1, 1]),
    "normalization scale NaN": set_path("codec.normalization.scale", [float("nan")] * 4),
    "normalization kind 5": set_path("codec.normalization.kind", 5),
    "normalization 10**5 values": set_path("codec.normalization.shift", [0.0] * 10**5),
    "source a list": set_path("source", []),
    "source.jagged 'yes'": set_path("source.jagged", "yes"),
    "source.format zip": set_path("source.format", "zip"),
    "source.representation unknown": set_path("source.representation", "PtEtaPhiQ"),
    "source.representation list": set_path("source.representation", ["EPtEtaPhi"]),
    "source.units dict": set_path("source.units", {}),
    "source.columns triples": set_path("source.columns", [["pt", "Jet_pt", "x"]]),
    "source.columns numbers": set_path("source.columns", [[1, 2]]),
    "source.kept_branches numbers": set_path("source.kept_branches", [5]),
    "source.kept_branches dtype huge": lambda h: h["tables"][0]["info"].update(
        kept_branches=["MET_pt"], dtypes={"MET_pt": "(1000000000000,)f8"}),
    "source.kept_branches dtype object": lambda h: h["tables"][0]["info"].update(
        kept_branches=["MET_pt"], dtypes={"MET_pt": "O"}),
    "source.kept_branches dtype nonsense": lambda h: h["tables"][0]["info"].update(
        kept_branches=["MET_pt"], dtypes={"MET_pt": "float1024"}),
    "source.dtypes a list": set_path("source.dtypes", [1]),
    "source.extra nested": set_path("source.extra", deep(400)),
    "source.unknown fields only": set_path("source", {"zzz": 1}),
    "format_version 1.1": set_path("format_version", "1.1"),
    "format_version 2.1": set_path("format_version", "2.1"),
    "codec unknown": set_path("codec.id", "zfp"),
    "codec a list": set_path("codec", [1]),
    "format_version 10**9": set_path("format_version", 10**9),
    "embedded true without DECW": set_path("codec.model.embedded", True),
    # format 3: tables, their codecs and carried groups
    "tables empty": set_path("tables", []),
    "tables not a list": set_path("tables", {"0": 1}),
    "table codec index out of range": set_path("tables.0.codecs", [7]),
    "table codec index negative": set_path("tables.0.codecs", [-1]),
    "table two codecs for one collection": set_path("tables.0.codecs", [0, 0]),
    "codecs empty": set_path("codecs", []),
    "groups name twice": set_path("tables.0.groups", [["run"], ["run"]]),
    "groups empty name": set_path("tables.0.groups", [[""]]),
    "groups not lists": set_path("tables.0.groups", [5]),
    "collection without columns": set_path("tables.0.info.collections", [{"name": "X", "columns": [],
                                                                         "representation": "PtEtaPhiM",
                                                                         "units": "GeV"}]),
    "codec of another representation": set_path("codecs.0.representation", "PxPyPzE"),
    "pt-eta-phi collection first": lambda h: h["tables"][0]["info"].update(
        representation="PtEtaPhi", columns=[["pt", "Jet_pt"], ["eta", "Jet_eta"], ["phi", "Jet_phi"]]),
    "collection name reused": set_path("tables.0.info.collections", [{"name": "Y", "columns": [
        ["pt", "Jet_pt"], ["eta", "a"], ["phi", "b"], ["m", "c"]], "representation": "PtEtaPhiM", "units": "GeV"}]),
}


@pytest.mark.parametrize("case", list(HOSTILE_HEADERS))
def test_hostile_header_is_refused_without_allocating(case, originals, work):
    base = "f16"  # no DECW: only the header can say what follows
    data = originals[base]
    mutate = HOSTILE_HEADERS[case]
    if isinstance(mutate, bytes):
        payload = head_payload(mutate)
    else:
        header = header_of(data)
        mutate(header)
        payload = head_payload(header)
    path = work / "hostile.aez"
    write(path, replace_record(data, 0, payload))
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        ok, result = attempt(lambda: read_fully(base, path), case)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - t0
    assert not ok, f"{case}: accepted"
    assert isinstance(result, jetzip.FormatError), f"{case}: {type(result).__name__}: {result}"
    assert seconds < 5, f"{case}: took {seconds:.1f} s"
    assert peak < 64 << 20, f"{case}: allocated {peak >> 20} MiB"


HOSTILE_MODEL_HEADERS = {
    "metadata a list": set_path("metadata", [1, 2]),
    "metadata a string": set_path("metadata", "ab"),
    "history a number": set_path("history", 5),
    "history of numbers": set_path("history", [1, 2]),
    "arch.latent Infinity": set_path("arch.latent", float("inf")),
    "arch.hidden 10**12": set_path("arch.hidden", [10**12]),
    "normalization scale 10**400": set_path("normalization.scale", [10**400] * 4),
    "arch a list": set_path("arch", [1]),
    "not an object": lambda h: 5,
}


@pytest.mark.parametrize("case", list(HOSTILE_MODEL_HEADERS))
def test_hostile_model_header_is_refused(case, originals, work):
    data = originals["model"]
    header = json.loads(payload_of(data, 0))
    replaced = HOSTILE_MODEL_HEADERS[case](header)
    payload = json.dumps(header if replaced is None else replaced).encode()
    write(work / "hostile.jzm", replace_record(data, 0, payload))
    ok, result = attempt(lambda: jetzip.load_model(work / "hostile.jzm"), case)
    assert not ok and isinstance(result, jetzip.FormatError), result


def _manifest_variant(data: bytes, index: int, mutate: Callable[[list], Any] | bytes) -> bytes:
    """Rewrite the JSON manifest of a WGTS/DECW/KEEP record (u32 length | JSON | blobs)."""
    payload = payload_of(data, index)
    (n,) = struct.unpack_from("<I", payload)
    if isinstance(mutate, bytes):
        head = mutate
    else:
        manifest = json.loads(payload[4:4 + n])
        replaced = mutate(manifest)
        head = json.dumps(manifest if replaced is None else replaced).encode()
    return replace_record(data, index, struct.pack("<I", len(head)) + head + payload[4 + n:])


MANIFESTS = {
    "nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
    "not a list": lambda m: {"a": 1},
    "a number": lambda m: 7,
    "shape Infinity": lambda m: m[0].update(shape=[float("inf")]),
    "shape 2**70": lambda m: m[0].update(shape=[m[0]["shape"][0], 2**70]),
    "shape negative": lambda m: m[0].update(shape=[m[0]["shape"][0], -1]),
    "shape two negatives": lambda m: m[0].update(shape=[m[0]["shape"][0], -1, -1]),
    "offset/nbytes Infinity": lambda m: m[0].update(offset=float("inf"), nbytes=float("inf")),
    "offset/nbytes negative": lambda m: m[0].update(offset=-4, nbytes=-4),
    "offset/nbytes 2**64": lambda m: m[0].update(offset=2**64, nbytes=2**64),
    "name a list": lambda m: m[0].update(name=[1]),
    "dtype object": lambda m: m[0].update(dtype="O"),
    "dtype subarray": lambda m: m[0].update(dtype="(3,)f8"),
    "dtype nonsense": lambda m: m[0].update(dtype="float1024"),
}


@pytest.mark.parametrize("name,tag,case", [
    (name, tag, case) for name, tag in (("model", "WGTS"), ("aez", "DECW"))
    for case in MANIFESTS if not case.startswith("dtype")])  # weights: float32 only
def test_hostile_manifest_is_refused(name, tag, case, originals, work):
    data = originals[name]
    index = next(k for k, r in enumerate(records(data)) if r[0] == tag)
    path = work / f"manifest-{name}"
    write(path, _manifest_variant(data, index, MANIFESTS[case]))
    ok, result = attempt(lambda: read_fully(name, path), f"{tag} {case}")
    assert not ok and isinstance(result, jetzip.FormatError), result


def _chunk_parts(payload: bytes) -> tuple[tuple, list[tuple], list[bytes]]:
    from jetzip import aez

    head = aez.CHUNK_HEAD.unpack_from(payload)
    n_parts = head[4]
    parts = [aez.PART_HEAD.unpack_from(payload, aez.CHUNK_HEAD.size + i * aez.PART_HEAD.size) for i in range(n_parts)]
    pos = aez.CHUNK_HEAD.size + n_parts * aez.PART_HEAD.size
    blobs = []
    for p in parts:
        blobs.append(payload[pos:pos + p[3]])
        pos += p[3]
    return head, parts, blobs


def _carried_variant(data: bytes, chunk_no: int, mutate: Callable[[Any], Any] | bytes,
                     raw_size: int | None = None) -> bytes:
    """A chunk's first carried group with its manifest rewritten (re-compressed, resealed)."""
    from jetzip import aez, carry

    index = [k for k, r in enumerate(records(data)) if r[0] == "CHNK"][chunk_no]
    head, parts, blobs = _chunk_parts(payload_of(data, index))
    g = next(i for i, p in enumerate(parts) if p[0] == aez.PART_CARRIED)
    raw = carry.decompress(blobs[g], "fixture")
    (n,) = struct.unpack_from("<I", raw)
    if isinstance(mutate, bytes):
        manifest_bytes = mutate
    else:
        manifest = json.loads(raw[4:4 + n])
        replaced = mutate(manifest)
        manifest_bytes = json.dumps(manifest if replaced is None else replaced).encode()
    new_raw = struct.pack("<I", len(manifest_bytes)) + manifest_bytes + raw[4 + n:]
    blob = carry.compress(new_raw, blobs[g][0])
    if raw_size is not None:  # a block head claiming another size
        blob = carry.GROUP_HEAD.pack(blob[0], blob[1], raw_size) + blob[carry.GROUP_HEAD.size:]
    blobs[g] = blob
    parts[g] = (*parts[g][:3], len(blob))
    payload = aez.CHUNK_HEAD.pack(*head) + b"".join(aez.PART_HEAD.pack(*p) for p in parts) + b"".join(blobs)
    return replace_record(data, index, payload)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    return lambda m: m.update({key: value})


def _item(key: str, index: int, value: Any) -> Callable[[dict], None]:
    def mutate(m: dict) -> None:
        m[key][index] = value
    return mutate


def _first_form(value: Any) -> Callable[[dict], None]:
    return _item("forms", 0, value)


CARRIED_MANIFESTS = {
    "nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
    "not JSON": b"\x00\xff{",
    "a list": lambda m: [m],
    "a number": lambda m: 7,
    "forms not a list": _set("forms", 5),
    "form unknown class": _first_form({"class": "UnionArray", "tags": "i8", "index": "i64", "contents": []}),
    "form nested 200 deep": _first_form(json.loads('{"class":"ListOffsetArray","offsets":"i64","content":' * 200
                                                   + '{"class":"NumpyArray","primitive":"float32"}' + "}" * 200)),
    "form not a dict": _first_form([1]),
    "form index out of range": _item("f", 0, 99),
    "form index negative": _item("f", 0, -1),
    "form index a string": _item("f", 0, "0"),
    "one branch fewer": lambda m: m.update(f=m["f"][:-1]),
    "one branch more": lambda m: m.update(f=m["f"] + [0]),
    "count 2**64": _item("n", 0, 2**64),
    "count negative": _item("n", 0, -5),
    "count Infinity": _item("n", 0, float("inf")),
    "count one more": lambda m: m["n"].__setitem__(0, m["n"][0] + 1),
    "counts not a list": _set("n", {"0": 1}),
    "transform unknown": lambda m: m.update(t="z" + m["t"][1:]),
    "counts width 3": lambda m: m.update(t="c3" + m["t"][1:]),
    "codes cut short": lambda m: m.update(t=m["t"][:-1]),
    "reference forward": lambda m: m["ref"].__setitem__("0", 10**6),
    "reference to itself": lambda m: m["ref"].__setitem__("1", 1),
    "reference not a number": lambda m: m["ref"].__setitem__("1", "0"),
}


@pytest.mark.parametrize("case", list(CARRIED_MANIFESTS))
def test_hostile_carried_manifest_is_refused(case, originals, work):
    """A carried group whose manifest is malformed or lies: a FormatError, within bounds."""
    path = work / "carried.aez"
    write(path, _carried_variant(originals["keep"], 0, CARRIED_MANIFESTS[case]))
    tracemalloc.start()
    try:
        ok, result = attempt(lambda: read_fully("keep", path), f"carried {case}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not ok and isinstance(result, jetzip.FormatError), result
    assert peak < 64 << 20, f"{case}: allocated {peak >> 20} MiB"


@pytest.mark.parametrize("claimed", [0, 1, 2**28 + 1, 2**32 - 1])
def test_carried_block_of_another_size_is_refused(claimed, originals, work):
    path = work / "carried-size.aez"
    write(path, _carried_variant(originals["keep"], 0, lambda m: None, raw_size=claimed))
    ok, result = attempt(lambda: read_fully("keep", path), f"carried block claiming {claimed} bytes")
    assert not ok and isinstance(result, jetzip.FormatError), result


def test_kept_branches_must_keep_their_layout(originals, work):
    """A later chunk whose carried arrays change dtype or size is refused, not concatenated."""
    def retype(m: dict) -> None:
        for form in m["forms"]:
            if form.get("primitive") == "float32":
                form["primitive"] = "uint32"
    cases = {"dtype": (retype, "the header says"),
             "size": (lambda m: m["n"].__setitem__(0, m["n"][0] * 2), "carried branches")}
    for mutate, message in cases.values():
        write(work / "layout.aez", _carried_variant(originals["keep"], 1, mutate))
        with pytest.raises(jetzip.FormatError, match=message):
            read_fully("keep", work / "layout.aez")


def test_missing_or_unreadable_file_is_an_input_error(work):
    for fn in (jetzip.read_aez, jetzip.load_model, open_aez):
        with pytest.raises(jetzip.InputError, match="does not exist"):
            fn(work / "no-such-file")
        with pytest.raises(jetzip.InputError):
            fn(work)  # a directory


# --- the command line ----------------------------------------------------------------------

def test_cli_reports_damage_in_one_line(originals, work):
    aez, model = originals["aez"], originals["model"]
    chunk = next(r for r in records(aez) if r[0] == "CHNK")
    flipped = bytearray(aez)
    flipped[chunk[1] + 100] ^= 0x04
    header = header_of(aez)
    header["codecs"][0]["model"]["arch"]["hidden"] = [float("inf")]
    cases = [
        (("inspect",), "flip.aez", bytes(flipped), "checksum mismatch"),
        (("decompress", "-o", work / "out.root"), "trunc.aez", aez[:len(aez) // 2], "truncated"),
        (("inspect",), "hostile.aez", replace_record(aez, 0, head_payload(header)), "malformed"),
        (("inspect",), "spliced.jzm", model + b"\x00" * 7, "after the END0 record"),
    ]
    for args, fname, data, needle in cases:
        path = work / fname
        write(path, data)
        r = invoke(args[0], path, *args[1:])
        err = r.stderr.decode()
        assert r.returncode == 1, (fname, r.returncode, err)
        assert "Traceback" not in err and "internal error" not in err, (fname, err)
        assert len(err.strip().splitlines()) == 1 and needle in err, (fname, err)
    assert not (work / "out.root").exists()
