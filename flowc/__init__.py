"""flowc: an ahead-of-time compiler for neural networks."""
from .errors import CompileError, FlowcError, InputError

from . import ir  # noqa: E402  (registers the ops)

__version__ = "0.1.0"
__all__ = ["CompileError", "FlowcError", "InputError", "ir", "__version__"]
