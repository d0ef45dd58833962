"""flowc's IR: types, graphs, the op registry, text form, verifier, reference interpreter, passes."""
from . import ops  # noqa: F401  (registers every op)
from .graph import Graph, Node, Value
from .infer import infer_graph, infer_node, known_array, known_ints
from .interpreter import check_inputs, run
from .registry import REQUIRED, Attr, OpDef, all_ops, defop, get_op, has_op
from .text import graph_resources, parse, print_graph
from .types import DTYPES, DType, Dim, TensorType, dtype, tensor_type
from .verify import verify

__all__ = [
    "Graph", "Node", "Value", "infer_graph", "infer_node", "known_array", "known_ints",
    "check_inputs", "run", "REQUIRED", "Attr", "OpDef", "all_ops", "defop", "get_op", "has_op",
    "graph_resources", "parse", "print_graph", "DTYPES", "DType", "Dim", "TensorType", "dtype",
    "tensor_type", "verify",
]
