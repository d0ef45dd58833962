"""Whether this machine can run CUDA tests: an NVIDIA driver that sees a GPU."""
from __future__ import annotations

import ctypes


def gpu_missing() -> str | None:
    """Why no CUDA test can run here (no driver, no GPU), or None when one can."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver (libcuda.so.1 cannot be loaded)"
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "the NVIDIA driver sees no GPU"
    return None
