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
