"""ptycho_dist.pipeline."""
