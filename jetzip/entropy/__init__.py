"""Entropy coding of integer symbol streams for the error-bounded codec.

A *stream* is a 1-D array of integers (quantized pt, eta, phi, mass, ... of many jets, or a
context group of them). Each is coded in two parts:

- the high part ``v >> k`` with a categorical model built from the stream's own histogram
  (the :class:`SymbolTable`, stored beside the data), by an rANS coder from `constriction`;
- the low ``k`` bits raw (fixed width), where the density is flat enough that modelling them
  would gain less than the table would cost. The encoder picks ``k`` per stream by estimated
  total size (table + coded high parts + raw bits); the decoder only reads it.

Why this is deterministic on every machine: the decoder rebuilds each model from integer
counts stored in the file, through the same float64 division and the same `constriction`
quantization (IEEE arithmetic, no transcendental functions), so encoder and decoder see the
same probabilities bit for bit. Nothing here depends on thread count or device.
"""
from __future__ import annotations

from .tables import BitReader, BitWriter, RansDecoder, RansEncoder, SymbolTable, fit_table

__all__ = ["BitReader", "BitWriter", "RansDecoder", "RansEncoder", "SymbolTable", "fit_table"]
