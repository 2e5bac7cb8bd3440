"""Signal datasets for training (latent caches come later)."""
from .images import IMAGE_SUFFIXES, CropBatcher, list_images, load_images

__all__ = ["IMAGE_SUFFIXES", "CropBatcher", "list_images", "load_images"]
