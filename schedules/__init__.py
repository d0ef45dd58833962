"""Kernel tiling and thread mapping per target (CPU and CUDA backends; not yet written)."""
