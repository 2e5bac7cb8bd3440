"""File <-> array conventions in one place (images now; audio later)."""
from .files import atomic_write_bytes, read_input_bytes
from .images import DEFAULT_MAX_PIXELS, image_to_array, read_image, save_image, to_tensor, to_uint8

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "atomic_write_bytes",
    "image_to_array",
    "read_image",
    "read_input_bytes",
    "save_image",
    "to_tensor",
    "to_uint8",
]
