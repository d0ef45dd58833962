"""The op definitions, one module per family; importing this package registers them all."""
from . import elementwise, linalg, nn, reduce, tensor  # noqa: F401
