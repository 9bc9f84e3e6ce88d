"""ptycho_dist.report."""
