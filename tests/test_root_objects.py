"""Objects uproot cannot write travel raw (their key's payload with the input's streamers), and a
restored ROOT file is written with the compression its input's data really used, old ROOT's
``fCompress`` codes 1-99 included (jetzip.tables.root_extras, jetzip.tables.root.input_compression)."""
from __future__ import annotations

import struct

import pytest
import uproot
from conftest import shared_file
from jetfactory import write_nanoaod

import jetzip
from jetzip.aez import AezFile
from jetzip.tables.root import input_compression
from jetzip.tables.root_extras import copy_one, copy_raw
from jetzip.tables.root_writer import write_objects

ISSUE243 = "public/uproot-issue243-new.root"  # HH->4b ntuple with TParameter<bool/int/double>
PARAMETERS = ("isMC", "DSID", "normalization")
TAGS = {b"ZL": "ZLIB", b"XZ": "LZMA", b"L4": "LZ4", b"ZS": "ZSTD"}


def _payload(f, name: str) -> bytes:
    """The bytes a key of an open uproot file stores after its header (compressed or not)."""
    k = f.key(name)
    start = k.data_cursor.index
    with open(f.file_path, "rb") as raw:
        raw.seek(start)
        return raw.read(k.data_compressed_bytes)


def _first_basket_tag(path) -> tuple[int, bytes]:
    """(fCompress, the block tag of the first compressed basket), read from the file's bytes
    with the TKey layout (fNbytes i4, fVersion i2, fObjlen i4, fDatime u4, fKeylen i2)."""
    data = open(path, "rb").read()
    with uproot.open(path) as f:
        code = int(f.file.fCompress)
        for key, cls in f.classnames(recursive=True).items():
            if cls != "TTree":
                continue
            for branch in f[key].itervalues(recursive=True):
                for seek in branch.member("fBasketSeek")[:branch.num_baskets]:
                    nbytes, _, objlen, _, keylen = struct.unpack(">ihiIh", data[seek:seek + 16])
                    if nbytes - keylen < objlen:  # compressed: a block header follows the key
                        return code, data[seek + keylen:seek + keylen + 2]
    raise AssertionError(f"no compressed basket in {path}")


def test_tparameters_travel_raw_and_read_back(tmp_path):
    """TParameter<bool/int/double> (which uproot reads but cannot write) go through both hops
    of a restore (input -> extras blob -> restored file) byte for byte, with their class,
    title and streamers: uproot reads the same values back."""
    path = shared_file(ISSUE243)
    blob, out = tmp_path / "blob.root", tmp_path / "out.root"
    not_carried: list[str] = []
    with uproot.open(path) as src, uproot.recreate(blob, compression=None) as dst:
        for name in PARAMETERS:
            copy_one(src, name, src.key(name).fClassName, dst, name, not_carried)
    assert not_carried == []
    with uproot.recreate(out) as dst:
        assert write_objects(dst, blob.read_bytes(), str(out)) == []
    with uproot.open(path) as a, uproot.open(out) as b:
        assert b.classnames() == {f"{n};1": a.classnames()[f"{n};1"] for n in PARAMETERS}
        for name in PARAMETERS:
            assert b.key(name).fClassName.startswith("TParameter<")
            assert b.key(name).fTitle == a.key(name).fTitle
            assert b[name].member("fVal") == a[name].member("fVal")
            assert b[name].member("fName") == name
            assert _payload(b, name) == _payload(a, name)  # raw: never re-serialised
        assert b.file.streamers_named(b.key("DSID").fClassName)  # what ROOT needs to read it


def test_whole_restore_carries_raw_objects_and_names_what_has_no_streamer(tmp_path):
    """Through compress/decompress: a TParameter<int> copied from a real file comes back with
    its value; an object whose class the file has no streamer for is named in the .aez's
    not_carried note, never dropped silently."""
    path = shared_file(ISSUE243)
    src, aez, out = tmp_path / "in.root", tmp_path / "x.aez", tmp_path / "out.root"
    write_nanoaod(src, n_events=40)
    with uproot.open(path) as real, uproot.update(src) as f:
        copy_raw(real, "DSID", f, "meta/DSID")
        f._cascading.add_object(f._file.sink, "JetzipNoSuchClass", "mystery", "no streamer", b"\0" * 16, 16)
        dsid = real["DSID"].member("fVal")
    jetzip.compress(src, aez)
    notes = AezFile(aez).header.notes.get("not_carried", [])
    assert [n for n in notes if "mystery" in n] == [n for n in notes if "JetzipNoSuchClass" in n]
    mystery = [n for n in notes if "mystery" in n]
    assert len(mystery) == 1 and "no streamer for JetzipNoSuchClass" in mystery[0]
    assert not [n for n in notes if "DSID" in n]
    jetzip.decompress(aez, out)
    with uproot.open(out) as b:
        assert b["meta/DSID"].member("fVal") == dsid
        assert "mystery;1" not in b.classnames()


@pytest.mark.parametrize("name", ["public/uproot-HZZ.root", "public/uproot-HZZ-objects.root"])
def test_old_fcompress_codes_take_the_algorithm_of_the_baskets(name):
    """fCompress < 100 (old ROOT: uproot names it None): the level is the code, the algorithm
    the one the baskets' block headers name."""
    path = shared_file(name)
    code, tag = _first_basket_tag(path)
    assert 0 < code < 100 and tag in TAGS
    with uproot.open(path) as f:
        assert f.file.compression is None
        assert input_compression(f) == f"{TAGS[tag]}({code})"


def test_modern_codes_as_recorded_and_rntuple_pages_their_own():
    """fCompress >= 100: uproot's reading of it, which the baskets agree with; an RNTuple: the
    setting of its pages (ZSTD whatever the file's fCompress), whose block tag agrees."""
    path = shared_file("public/pfnano.root")
    code, tag = _first_basket_tag(path)
    with uproot.open(path) as f:
        assert input_compression(f) == str(f.file.compression) == f"{TAGS[tag]}({code % 100})"
    path = shared_file("public/nano_dimuon_rntuple.root")
    with uproot.open(path) as f:
        ntuple = f[next(k for k, c in f.classnames().items() if c == "ROOT::RNTuple")]
        pages = [p for col in ntuple.page_link_list[0] for p in col.pages]
        page = max(pages, key=lambda p: p.locator.num_bytes).locator
        with open(path, "rb") as raw:
            raw.seek(page.offset)
            page_tag = raw.read(2)
        got = input_compression(f, ntuple)
        assert got.startswith(TAGS[page_tag] + "(") and got != str(f.file.compression)
        assert input_compression(f) == str(f.file.compression)


@pytest.mark.parametrize("recorded", ["", "None", "none", None, "SZ3(7)"])
def test_a_restore_is_never_uncompressed_when_the_input_setting_is_unknown(recorded):
    """'input' with nothing usable recorded (older .aez files wrote "None" for old codes): zstd-1,
    never an uncompressed output; a recorded setting is taken as it is."""
    from jetzip.tables.root_writer import compression

    got = compression("input", recorded)
    assert isinstance(got, uproot.ZSTD) and got.level == 1
    assert isinstance(compression("input", "LZMA(9)"), uproot.LZMA) and compression("input", "LZMA(9)").level == 9
    assert compression("none") is None
