"""flowc: an ahead-of-time compiler for neural networks."""
from .errors import CompileError, FlowcError, InputError

from . import ir  # noqa: E402  (registers the ops)

__version__ = "0.1.0"

from .api import Artifact, Model, TensorInfo, compile, load  # noqa: E402
from .frontend.builder import GraphBuilder  # noqa: E402

__all__ = ["Artifact", "CompileError", "FlowcError", "GraphBuilder", "InputError", "Model", "TensorInfo",
           "compile", "ir", "load", "__version__"]
