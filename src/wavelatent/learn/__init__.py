"""Compressed-domain learning experiments: the same small model trained on latents and on pixels.

``learn(LearnOptions(data, out))`` runs the classification experiment of ``wavelatent learn``
(images in class folders, or the spoken-digit recordings);
:mod:`wavelatent.learn.inputs` holds the registry of input types (add your own with
``register_input``); :mod:`wavelatent.learn.models` the CNN family.
"""
from .experiment import LearnOptions, collect, learn
from .inputs import DEFAULT_AUDIO_INPUTS, DEFAULT_INPUTS, INPUT_TYPES, InputType, get_input, register_input

__all__ = ["DEFAULT_AUDIO_INPUTS", "DEFAULT_INPUTS", "INPUT_TYPES", "InputType", "LearnOptions", "collect", "get_input", "learn", "register_input"]
