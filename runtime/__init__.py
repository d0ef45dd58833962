"""The C++ runtime library and its Python binding (not yet written)."""
