"""Shape and dtype inference as a pass."""
from ..graph import Graph
from ..infer import infer_graph
from .manager import graph_pass


@graph_pass("infer-shapes", "Type every value from the graph inputs, symbolic dims allowed.")
def infer_shapes(graph: Graph) -> Graph:
    return infer_graph(graph)
