"""Codecs of the ``.aez`` container: one registry, one interface (:mod:`.base`).

- ``latent`` (:mod:`.latent`): the AE_3D autoencoder's 3 floats per jet, with the jets the
  network cannot reproduce within a tolerance stored verbatim;
- ``bounded`` (:mod:`.bounded`): every value within a guaranteed maximum error, closed-loop
  quantization and rANS entropy coding.
"""
from __future__ import annotations

from .base import Codec, DecodeContext, UnknownCodecError, codec_class, get_codec, register

__all__ = ["Codec", "DecodeContext", "UnknownCodecError", "codec_class", "get_codec", "register"]
