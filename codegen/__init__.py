"""Target emitters: C++ for CPU, CUDA; plan and weights writers (not yet written)."""
