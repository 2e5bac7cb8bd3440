"""Integer symbols <-> bytes: frequency tables and rANS coding (numpy + constriction, no torch)."""
from .rans import CODER_PRECISION, MAX_SYMBOLS, decode, encode
from .tables import PRECISION, ideal_bits, quantize_pmf

__all__ = ["CODER_PRECISION", "MAX_SYMBOLS", "PRECISION", "decode", "encode", "ideal_bits", "quantize_pmf"]
