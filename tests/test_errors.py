"""Every user-facing error: a clear message on stderr, exit code 1, and no output left behind."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import uproot

import jetfactory
from conftest import invoke


def assert_fails(r, *needles: str, code: int = 1):
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, err)
    assert "Traceback" not in err
    for n in needles:
        assert n in err, (n, err)


def test_missing_input(tmp_path, small_model_path):
    r = invoke("compress", tmp_path / "nope.root", "-o", tmp_path / "x.aez", "-m", small_model_path)
    assert_fails(r, "does not exist")
    assert not (tmp_path / "x.aez").exists()


def test_unknown_format(tmp_path, small_model_path):
    p = tmp_path / "jets.dat"  # .txt is read as (tab-separated) CSV
    p.write_text("hello\n")
    r = invoke("compress", p, "-o", tmp_path / "x.aez", "-m", small_model_path)
    assert_fails(r, "unknown table format")
    assert not (tmp_path / "x.aez").exists()


def test_not_a_root_file(tmp_path, small_model_path):
    p = tmp_path / "jets.root"
    p.write_bytes(b"this is not ROOT" * 10)
    r = invoke("compress", p, "-o", tmp_path / "x.aez", "-m", small_model_path)
    assert_fails(r, "cannot read as a ROOT file")


@pytest.mark.parametrize("how", ["flipped", "zeroed"])
def test_a_damaged_root_file_is_named_damaged_in_one_line(tmp_path, how):
    """Bytes flipped or zeroed inside a ROOT file's baskets: one line saying the file is damaged
    (never an internal error, never 'uproot cannot read it' with exit 0), no output."""
    from conftest import EXAMPLE_JETS

    raw = bytearray(EXAMPLE_JETS.read_bytes())
    middle = len(raw) // 2
    for i in range(middle, middle + 2000):
        raw[i] = raw[i] ^ 0xFF if how == "flipped" else 0
    p = tmp_path / "damaged.root"
    p.write_bytes(bytes(raw))
    for extra in ((), ("--error-bound", "1e-3")):
        r = invoke("compress", p, "-o", tmp_path / "x.aez", *extra)
        assert_fails(r, "damaged.root", "is damaged")
        assert r.stderr.decode().count("\n") == 1 and not (tmp_path / "x.aez").exists()


@pytest.mark.parametrize("how, says", [("empty", "the file is empty"), ("head", "the file is truncated"),
                                       ("half", "the file is truncated"), ("tiny", "the file is truncated"),
                                       ("aez", "not a ROOT file")])
def test_a_truncated_empty_or_renamed_root_file_says_which(tmp_path, how, says):
    """What a user has in hand when a ROOT file cannot be opened: an empty file, a copy cut short
    (at 5 kB, or half-way: an internal error before), an .aez renamed .root."""
    from conftest import EXAMPLE_JETS

    raw = EXAMPLE_JETS.read_bytes()
    data = {"empty": b"", "head": raw[:5000], "half": raw[:len(raw) // 2], "tiny": raw[:100],
            "aez": b"\x89AEZ\r\n\x1a\n" + raw[:100]}[how]
    p = tmp_path / "x.root"
    p.write_bytes(data)
    r = invoke("compress", p, "-o", tmp_path / "x.aez")
    assert_fails(r, "x.root: cannot read as a ROOT file", says)
    assert r.stderr.decode().count("\n") == 1 and not (tmp_path / "x.aez").exists()


def test_missing_columns_lists_jet_like_branches(tmp_path, small_model_path):
    p = tmp_path / "j.root"
    with uproot.recreate(p) as f:
        f.mktree("t", {"jet_pt": np.float32, "jet_eta": np.float32, "weight": np.float32}).extend(
            {"jet_pt": np.ones(3, np.float32), "jet_eta": np.zeros(3, np.float32), "weight": np.ones(3, np.float32)})
    r = invoke("compress", p, "-o", tmp_path / "x.aez", "-m", small_model_path)
    assert_fails(r, "no jet 4-vectors", "jet_pt", "jet_eta")
    r = invoke("compress", p, "-o", tmp_path / "x.aez", "-m", small_model_path,
                "--columns", "pt=jet_pt,eta=jet_eta,phi=jet_phi,m=jet_m")
    assert_fails(r, "no column(s) jet_phi, jet_m")
    assert not (tmp_path / "x.aez").exists()


def test_missing_tree_lists_trees(tmp_path, small_model_path, nano_file):
    path, _ = nano_file
    r = invoke("compress", path, "-o", tmp_path / "x.aez", "-m", small_model_path, "--tree", "Jets")
    assert_fails(r, "no tree 'Jets'", "Events")


@pytest.mark.parametrize("bad,reason", [(math.nan, "NaN or inf"), (math.inf, "NaN or inf"),
                                        (-5.0, "pt <= 0"), (0.0, "pt <= 0")])
def test_invalid_jets_are_counted_and_located(tmp_path, small_model_path, bad, reason):
    j = jetfactory.jets(50, seed=1)
    e = jetfactory.energy(j["pt"], j["eta"], j["m"])
    pt = j["pt"].copy()
    pt[[7, 20, 33]] = bad
    jetfactory.write_csv(tmp_path / "j.csv", {"E": e, "pt": pt, "eta": j["eta"], "phi": j["phi"]})
    out = tmp_path / "x.aez"
    r = invoke("compress", tmp_path / "j.csv", "-o", out, "-m", small_model_path, "--units", "GeV")
    assert_fails(r, "3 jet(s) cannot be encoded", reason, "line 9", "--drop-invalid")
    assert not out.exists()
    r = invoke("compress", tmp_path / "j.csv", "-o", out, "-m", small_model_path, "--units", "GeV",
                "--drop-invalid", "--json")
    assert r.returncode == 0, r.stderr
    assert b"dropped 3 invalid jets" in r.stderr


def test_output_exists_without_force(tmp_path, small_model_path, nano_file):
    path, _ = nano_file
    out = tmp_path / "x.aez"
    out.write_bytes(b"precious")
    r = invoke("compress", path, "-o", out, "-m", small_model_path)
    assert_fails(r, "exists", "--force")
    assert out.read_bytes() == b"precious"
    r = invoke("compress", path, "-o", out, "-m", small_model_path, "-f")
    assert r.returncode == 0
    assert out.read_bytes()[:4] == b"\x89AEZ"


def test_output_may_not_be_the_input(tmp_path, small_model_path):
    j = jetfactory.jets(20)
    p = tmp_path / "j.csv"
    jetfactory.write_csv(p, {"pt": j["pt"], "eta": j["eta"], "phi": j["phi"], "m": j["m"]})
    before = p.read_bytes()
    r = invoke("compress", p, "-o", p, "-m", small_model_path, "-f")
    assert_fails(r, "is the input")
    assert p.read_bytes() == before


def _records(path):
    """The verified records of a .aez file (format 3: CRCs seeded by the header's)."""
    import zlib

    from jetzip import container

    with open(path, "rb") as f:
        f.seek(container.PREAMBLE.size)
        head = container.read_record(f, 0, None, "x")
        return [head, *container.iter_records(f, "x", 1, zlib.crc32(head.payload))]


def _fuzz_helpers():
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("fuzz_aez", REPO / "examples" / "fuzz_aez.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compressed(tmp_path, small_model_path, nano_file):
    path, _ = nano_file
    import jetzip
    out = tmp_path / "ok.aez"
    jetzip.compress(path, out, model=small_model_path, chunk_jets=1024)
    return out


def test_truncated_aez(tmp_path, small_model_path, nano_file):
    good = _compressed(tmp_path, small_model_path, nano_file)
    data = good.read_bytes()
    bad = tmp_path / "trunc.aez"
    bad.write_bytes(data[: len(data) - 100])
    r = invoke("decompress", bad, "-o", tmp_path / "x.root")
    assert_fails(r, "truncated")
    assert not (tmp_path / "x.root").exists()
    r = invoke("inspect", bad)
    assert_fails(r, "truncated")


def test_corrupted_chunk_is_named(tmp_path, small_model_path, nano_file):
    good = _compressed(tmp_path, small_model_path, nano_file)
    import jetzip
    recs = _records(good)
    chunk_recs = [r for r in recs if r.tag == "CHNK"]
    assert len(chunk_recs) >= 2
    target = chunk_recs[1]
    data = bytearray(good.read_bytes())
    data[target.offset + 40] ^= 0x10
    bad = tmp_path / "flip.aez"
    bad.write_bytes(bytes(data))
    r = invoke("decompress", bad, "-o", tmp_path / "x.h5")
    assert_fails(r, "checksum mismatch", f"record {target.index} (CHNK)")
    assert not (tmp_path / "x.h5").exists()
    r = invoke("decompress", bad, "-o", "-")
    assert_fails(r, "checksum mismatch")
    assert r.stdout == b"", "nothing may reach stdout from a damaged file"
    with pytest.raises(jetzip.FormatError):
        jetzip.read_aez(bad)


def test_model_hash_mismatch(tmp_path, small_model_path, nano_file):
    path, _ = nano_file
    import jetzip
    from jetzip.model import load_model
    aez = tmp_path / "a.aez"
    jetzip.compress(path, aez, model=small_model_path, embed_model=False)
    other = load_model(small_model_path)
    other.weights["decoder.0.bias"] = other.weights["decoder.0.bias"] + 1e-3
    other.save(tmp_path / "other.jzm")
    r = invoke("decompress", aez, "-o", tmp_path / "x.root", "-m", tmp_path / "other.jzm")
    assert_fails(r, "is not the one")
    assert not (tmp_path / "x.root").exists()
    r = invoke("decompress", aez, "-o", tmp_path / "x.root")
    assert_fails(r, "does not embed its decoder", "--model")


def test_newer_format_version(tmp_path, small_model_path, nano_file):
    from jetzip.aez import READABLE_MAJORS

    import io

    from jetzip import container

    good = _compressed(tmp_path, small_model_path, nano_file)
    data = good.read_bytes()
    newer = max(READABLE_MAJORS) + 1
    # A file of a newer format: the preamble and the (checksummed) header say so
    f = io.BytesIO(data)
    f.seek(container.PREAMBLE.size)
    container.read_record(f, 0, len(data), "test")
    rest = data[f.tell():]
    fuzz = _fuzz_helpers()
    header = fuzz.header_of(data)
    header["format_version"] = f"{newer}.0"
    out = io.BytesIO()
    container.write_preamble(out, container.AEZ_MAGIC, newer, 0)
    container.write_record(out, "HEAD", fuzz.head_payload(header))
    bad = tmp_path / "newer.aez"
    bad.write_bytes(out.getvalue() + rest)
    r = invoke("inspect", bad)
    assert_fails(r, f"format version {newer}.0", "upgrade jetzip")
    # Only the version bytes changed (the preamble has no checksum): damaged, not newer
    flipped = bytearray(data)
    flipped[8:10] = newer.to_bytes(2, "little")
    bad.write_bytes(bytes(flipped))
    r = invoke("inspect", bad)
    assert_fails(r, "version bytes are damaged", "format 3.0")


def test_usage_errors_exit_2(tmp_path):
    r = invoke("compress")
    assert r.returncode == 2
    r = invoke("decompress", tmp_path / "x.aez")  # missing -o
    assert r.returncode == 2
    r = invoke("compress", "x.root", "--latent-dtype", "int8")
    assert r.returncode == 2


def test_unknown_device(tmp_path, small_model_path, nano_file):
    path, _ = nano_file
    r = invoke("compress", path, "-o", tmp_path / "x.aez", "-m", small_model_path, "--device", "tpu")
    assert_fails(r, "unknown device")
    assert not (tmp_path / "x.aez").exists()


def test_cuda_requested_without_cuda(tmp_path, small_model_path, nano_file):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the no-CUDA message cannot be shown")
    path, _ = nano_file
    r = invoke("compress", path, "-o", tmp_path / "x.aez", "-m", small_model_path, "--device", "cuda")
    assert_fails(r, "CUDA is not available")


def test_reordered_chunks_are_detected(tmp_path, small_model_path, nano_file):
    good = _compressed(tmp_path, small_model_path, nano_file)
    import jetzip
    from jetzip import container
    data = good.read_bytes()
    recs = _records(good)
    chunks = [r for r in recs if r.tag == "CHNK"]
    assert len(chunks) >= 2
    a, b = chunks[0], chunks[1]
    end = lambda r: r.offset + container.RECORD_HEAD.size + len(r.payload) + container.CRC.size  # noqa: E731
    swapped = data[:a.offset] + data[b.offset:end(b)] + data[end(a):b.offset] + data[a.offset:end(a)] + data[end(b):]
    assert len(swapped) == len(data) and swapped != data
    bad = tmp_path / "swapped.aez"
    bad.write_bytes(swapped)
    with pytest.raises(jetzip.FormatError, match="chunk number 1 found where chunk 0 belongs"):
        jetzip.read_aez(bad)


def test_binary_outputs_refuse_stdout(tmp_path, small_model_path, nano_file):
    path, _ = nano_file
    aez = tmp_path / "a.aez"
    assert invoke("compress", path, "-o", aez, "-m", small_model_path).returncode == 0
    r = invoke("compress", path, "-o", "-", "-m", small_model_path, cwd=tmp_path)
    assert_fails(r, "cannot go to standard output")
    for fmt in ("root", "hdf5"):
        r = invoke("decompress", aez, "-o", "-", "--format", fmt, cwd=tmp_path)
        assert_fails(r, "writes CSV only")
        assert r.stdout == b""
    assert not (tmp_path / "-").exists()


def test_glob_output_must_be_a_folder_even_for_one_match(tmp_path, small_model_path, nano_file):
    path, _ = nano_file
    folder = tmp_path / "in"
    folder.mkdir()
    os.replace(path, folder / "a.root")
    r = invoke("compress", str(folder / "*.root"), "-o", tmp_path / "out", "-m", small_model_path)
    assert_fails(r, "must be an existing folder with several inputs or a glob")
    assert not (tmp_path / "out").exists()
    r = invoke("compress", str(folder / "*.root"), "-o", str(tmp_path / "made") + "/",
                "-m", small_model_path)
    assert r.returncode == 0 and (tmp_path / "made" / "a.aez").is_file(), r.stderr  # 'dir/' is created
    (tmp_path / "out").mkdir()
    r = invoke("compress", str(folder / "*.root"), "-o", tmp_path / "out", "-m", small_model_path)
    assert r.returncode == 0 and (tmp_path / "out" / "a.aez").is_file()


def test_errors_are_one_line(tmp_path, small_model_path):
    empty = tmp_path / "empty.root"  # uproot's own message about it spans three lines
    empty.write_bytes(b"")
    r = invoke("compress", empty, "-o", tmp_path / "x.aez", "-m", small_model_path)
    assert_fails(r, "empty.root")
    assert len(r.stderr.decode().strip().splitlines()) == 1, r.stderr.decode()


def test_library_arguments_are_checked(tmp_path, nano_file, small_model_path):
    import jetzip

    path, _ = nano_file
    out = tmp_path / "x.aez"
    for kwargs, message in (({"chunk_jets": 0}, "chunk_jets must be a positive integer"),
                            ({"batch_size": "10"}, "batch size must be a positive integer"),
                            ({"threads": 0}, "threads must be a positive integer"),
                            ({"device": 0}, "device must be a string")):
        with pytest.raises(jetzip.JetzipError, match=message):
            jetzip.compress(path, out, model=small_model_path, **kwargs)
    assert not out.exists()
    jetzip.compress(path, out, model=small_model_path, keep_branches="run")  # one pattern
    assert jetzip.read_aez(out)["table"]["kept_branches"] == ["run"]
    for call in (lambda: jetzip.open_aez(5), lambda: jetzip.inspect(None)):
        with pytest.raises(jetzip.InputError, match="expected a file path"):
            call()


def test_file_shorter_than_its_preamble(tmp_path, small_model_path, nano_file):
    path, _ = nano_file
    aez = tmp_path / "a.aez"
    assert invoke("compress", path, "-o", aez, "-m", small_model_path).returncode == 0
    tiny = tmp_path / "tiny.aez"
    tiny.write_bytes(aez.read_bytes()[:10])
    assert_fails(invoke("inspect", tiny), "truncated .aez file")


def test_many_warnings_of_one_kind_are_counted_not_flooded():
    """Hundreds of lines of one kind (PHYSLITE's 483 unreadable branches) print as the first
    ones and one line counting the rest and saying where they all are."""
    from jetzip.api import MAX_WARNING_LINES, warn_each

    said: list[str] = []
    lines = [f"branch b{i}" for i in range(483)]
    warn_each(said.append, "not carried", lines, "all of them: inspect --json")
    assert len(said) == MAX_WARNING_LINES and said[0] == "not carried: branch b0"
    assert said[-1] == f"not carried: and {483 - MAX_WARNING_LINES + 1} more (all of them: inspect --json)"
    said.clear()
    warn_each(said.append, "x", lines[:MAX_WARNING_LINES], "")
    assert said == [f"x: {line}" for line in lines[:MAX_WARNING_LINES]]


def test_decompress_into_a_folder_says_so_before_decoding(tmp_path, small_model_path, nano_file):
    path, _ = nano_file
    invoke("compress", path, "-o", tmp_path / "x.aez", "-m", small_model_path)
    for out in (tmp_path / "d", tmp_path / "d.root"):
        out.mkdir()
        r = invoke("decompress", tmp_path / "x.aez", "-o", out, "-m", small_model_path)
        assert_fails(r, f"output {out} is a folder")
        assert r.stderr.decode().count("\n") == 1 and list(out.iterdir()) == []
