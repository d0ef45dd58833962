"""Frontends: the ONNX importer and the Python graph builder; both produce ir.Graph."""
