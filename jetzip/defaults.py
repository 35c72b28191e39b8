"""Defaults and choices that the library and the CLI share (the CLI imports them, never copies).

Importing this module is cheap: no torch, numpy or uproot.
"""
from __future__ import annotations

import os

RAW_BYTES_PER_JET = 16  # four float32 values: what "ratio to float32" compares with
# Jets read, encoded and written at a time: memory is a few chunks deep whatever the input.
DEFAULT_CHUNK_JETS = 1 << 18  # the latent codec (the network's batches live inside a chunk)
DEFAULT_BOUNDED_CHUNK_JETS = 1 << 20  # the bounded codec: per-chunk tables pay off on ~1M jets
# quantized: latents stored at the network's own precision and rANS-coded (codecs/latent.py);
# float32 is the literal 3 x float32 of jetzip 0.1
LATENT_DTYPE_CHOICES = ("quantized", "float32", "float16")
DEFAULT_LATENT_DTYPE = "quantized"
DEFAULT_LATENT_TOLERANCE = "pt=5e-3,eta=5e-3,phi=5e-3"  # pt relative, eta and phi absolute
ERROR_BOUND_PRESETS = ("nanoaod",)
# The bounded codec's entropy model: "none" (each chunk's own tables) by default; "auto" (the
# shipped learned model) saves about 2 % of the jets' bytes but reads 6x and writes 7x slower
# (issue 22, examples/bench_read.py), so it is an option for archives that are rarely read.
DEFAULT_CONTEXT_MODEL = "none"
DEFAULT_ROOT_COMPRESSION = "input"  # the input's own; the choices: jetzip.tables.root_writer.COMPRESSIONS
DEVICE_HELP = "auto, cpu, cuda or cuda:N"
DEFAULT_DEVICE = "auto"
# Decoded chunks smaller than this are joined before they are written (ten thousand tiny
# chunks would otherwise cost ten thousand baskets, and time that grows with their square).
MIN_WRITE_JETS = 1 << 16


def available_cores() -> int:
    """The cores this process may run on (``taskset`` and cgroups included; ``os.cpu_count()``
    counts the machine's): the default number of parallel chunk workers everywhere."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1
