"""ptycho_dist.orchestration."""
