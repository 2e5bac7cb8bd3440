"""Signal transforms with no learning and no bytes: wavelet packet analysis/synthesis."""
from wavelatent.transforms.wavelets import analysis_1d, analysis_2d, analysis_2d_approximation, synthesis_1d, synthesis_2d

__all__ = ["analysis_1d", "synthesis_1d", "analysis_2d", "synthesis_2d", "analysis_2d_approximation"]
