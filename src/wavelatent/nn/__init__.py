"""Learned modules: linear encoder, convolutional decoder, bounded quantizer, entropy prior."""
from .decoder import ConvDecoder
from .encoder import LinearEncoder
from .prior import LogisticMixturePrior
from .quantizer import BoundedQuantizer

__all__ = ["BoundedQuantizer", "ConvDecoder", "LinearEncoder", "LogisticMixturePrior"]
