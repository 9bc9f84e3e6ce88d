"""ptycho_dist.storage."""
