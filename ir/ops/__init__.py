"""The op definitions, one module per family; importing this package registers them all."""
from . import elementwise, linalg, nn, reduce, tensor  # noqa: F401
from . import fused  # noqa: F401  (after linalg and nn: fused ops reuse their records)
from . import collective  # noqa: F401
