"""Frontends: the ONNX importer and the Python graph builder; both produce ir.Graph."""
from . import builder, onnx  # noqa: F401  (`flowc.frontend.onnx` after `import flowc` alone)
