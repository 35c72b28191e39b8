"""The exceptions jetzip raises on bad input, bad files or bad models.

Every problem a user can cause or meet (a missing column, a corrupted file, a model that does
not match) is a :class:`JetzipError`. It subclasses :class:`ValueError` so that library users
can catch it with builtin types, and the CLI turns it into a one-line message and exit code 1.
Anything else escaping jetzip is a bug.
"""
from __future__ import annotations

import os
from typing import BinaryIO


class JetzipError(ValueError):
    """Base class: a problem with the user's input, files or options."""


class InputError(JetzipError):
    """The input table is missing, unreadable, or holds invalid jets."""


class OutputExistsError(JetzipError):
    """The output path exists and overwriting was not asked for."""


class FormatError(JetzipError):
    """A .aez or model file is malformed, truncated or corrupted."""


class UnsupportedVersionError(FormatError):
    """A file written by a newer jetzip whose format this version cannot read."""


class ModelMismatchError(JetzipError):
    """A model does not match the one a .aez file was compressed with."""


def positive_int(name: str, value: object) -> int:
    """`value` as an int, or a JetzipError: library arguments get the checks the CLI's types give.

    Raises:
        JetzipError: `value` is not an integer >= 1 (booleans and floats included).
    """
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise JetzipError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def open_input(path: "str | os.PathLike[str]") -> "BinaryIO":
    """`path` opened for binary reading, or an InputError that says why it cannot be.

    Raises:
        InputError: the file does not exist, is a directory, or cannot be opened.
    """
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory") from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror}") from None


# Exceptions of the decompressors under uproot, h5py and pyarrow (by class name: none of these
# libraries is imported here) that mean the bytes of a file are damaged, not that a type is
# unsupported.
_DAMAGE = {"DecompressionError", "LZMAError", "ZstdError", "BadGzipFile"}


def damaged_input(exc: BaseException) -> bool:
    """Whether `exc`, raised while reading an input file, says the file's bytes are damaged: a
    compressed block that does not decompress (zlib, LZMA, LZ4, zstd), or a ROOT basket whose
    header uproot cannot read (a basket of a readable type is damaged when that fails)."""
    name = type(exc).__name__
    if name in _DAMAGE or (name == "error" and type(exc).__module__ == "zlib"):
        return True
    return name == "DeserializationError" and "TBasket" in str(exc)


def damage_message(exc: BaseException, what: str) -> str:
    """One line for a damaged input: `what` (the file, or the file and branch) and the reader's
    own first line."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{what} is damaged: its data cannot be decompressed or read ({type(exc).__name__}: {first})"
