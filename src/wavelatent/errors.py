"""Every error a user can cause derives from :class:`WavelatentError`."""
from __future__ import annotations


class WavelatentError(Exception):
    """Base class of all errors wavelatent raises for bad input or bad files."""


# --- container ------------------------------------------------------------
class ContainerError(WavelatentError):
    """A .wlt file is not a valid container."""


class TruncatedError(ContainerError):
    """The data ends before a field that the format requires."""


class BadMagicError(ContainerError):
    """The data does not start with the wavelatent magic bytes."""


class UnsupportedVersionError(ContainerError):
    """The container's format version is not one this build reads."""


class ChecksumError(ContainerError):
    """The CRC32 stored in the file does not match its contents."""


class HeaderError(ContainerError):
    """The file header (compact or JSON) is malformed or has missing/invalid fields."""


class LimitError(ContainerError):
    """A size in the file exceeds a configured limit (checked before allocating)."""


# --- models and weights ---------------------------------------------------
class PresetError(WavelatentError):
    """Unknown preset name, or a preset without shipped weights."""


class WeightsError(WavelatentError):
    """A weights file is missing, malformed, or does not match its config."""


class WeightsMismatchError(WeightsError):
    """A file was written with other weights than the ones given to decode it."""


# --- entropy coding -------------------------------------------------------
class EntropyCodingError(WavelatentError):
    """Symbols out of range, or a bitstream that does not decode."""


# --- inputs and outputs ---------------------------------------------------
class InputError(WavelatentError):
    """A signal or file that wavelatent cannot read or does not support."""


class UnsupportedInputError(InputError):
    """A readable input of a kind that is not supported (e.g. 16-bit images)."""


class OutputError(WavelatentError):
    """An output cannot be written (a directory in the way, disk full, no permission)."""


class OutputExistsError(OutputError):
    """The output exists and overwriting was not allowed (use --force)."""


# --- audio files ------------------------------------------------------------
class UnreadableAudioError(InputError):
    """An audio file that cannot be decoded (corrupt, truncated, empty or not audio at all)."""


class UnsupportedAudioError(UnsupportedInputError):
    """A readable audio file of a kind that is not supported (format, sample type, rate, channels)."""
