"""How each kernel family is tiled and mapped to threads, one module per target: cpu.py and cuda.py,
each a table of frozen dataclasses (one per family) with the reason for its numbers.

The emitters (codegen/) read the tables; the kernel libraries (runtime/kernels/<target>), which
build with plain CMake and no Python, read the same numbers as the constants of their checked-in
schedule.h, which each module renders (header.py): `python -m flowc.schedules.cuda` (or .cpu)
rewrites it after a table changes, and tests/schedules fails while a header is stale.
"""
