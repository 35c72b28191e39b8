"""Entropy coding of the bounded codec's integer symbol streams.

- :mod:`.kernels`: payload version 3's coder, compiled with numba: a table-driven rANS
  (16-bit words, frequencies to 2^12 for a chunk's own tables and 2^16 for the learned model),
  and the learned model's network in exact integer-valued arithmetic;
- :mod:`.context`: the learned entropy model (:class:`~.context.ContextModel`), its file format
  and the numpy reference of its arithmetic;
- :mod:`.legacy`: the decoding of payload versions 1 and 2 (stored histograms and
  `constriction`'s rANS).

Why every machine decodes the same symbols: the models are integer frequencies stored in the
file or computed from integer features by integer-valued arithmetic; no floating-point
function of a machine's library decides a probability. Nothing depends on thread count or
device. The compiled coder is imported only when a version 3 chunk is coded.
"""
from __future__ import annotations

from .legacy import BitReader, RansDecoder, SymbolTable

__all__ = ["BitReader", "RansDecoder", "SymbolTable"]
