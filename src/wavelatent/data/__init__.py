"""Signal datasets for training; latent caches and the datasets that read them."""
from .cache import build_cache, read_index
from .images import IMAGE_SUFFIXES, CropBatcher, list_images, load_images
from .latents import EncodedImageFolder, LatentDataset

__all__ = [
    "IMAGE_SUFFIXES",
    "CropBatcher",
    "EncodedImageFolder",
    "LatentDataset",
    "build_cache",
    "list_images",
    "load_images",
    "read_index",
]
