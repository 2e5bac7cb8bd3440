"""Training: the loop, checkpoints that resume exactly, and export to release weights."""
from .checkpoint import export_checkpoint, load_checkpoint, prune_details, save_checkpoint
from .loop import TrainOptions, train

__all__ = ["TrainOptions", "export_checkpoint", "load_checkpoint", "prune_details", "save_checkpoint", "train"]
