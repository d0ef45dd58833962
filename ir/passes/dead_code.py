"""Dead-code elimination: what no graph output depends on goes; graph inputs, the model's
interface, stay even when unused."""
from ..graph import Graph
from .manager import graph_pass


@graph_pass("eliminate-dead-code", "Remove nodes whose outputs are unused and unused constants.")
def eliminate_dead_code(graph: Graph) -> Graph:
    live = {id(v) for v in graph.outputs}
    dead = []
    for node in reversed(graph.nodes):
        if any(id(v) in live for v in node.outputs):
            live.update(id(v) for v in node.inputs if v is not None)
        else:
            dead.append(node)
    graph.remove_nodes(dead)
    graph.remove_constants(v for v in graph.constants if id(v) not in live)
    return graph
