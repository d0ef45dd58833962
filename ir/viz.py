"""Graphviz pictures of a graph: `to_dot` gives the dot source, `render` writes .svg/.png/.pdf.

One box per op, coloured by op family: the op type in bold, its output types, its main
attributes. Weights are small grey boxes beside each user; tiny constants (shapes, scalars)
are folded into their consumer's label. Edges carry the tensor type (up to EDGE_LABEL_LIMIT
nodes); hovering over a node in an SVG shows its line of IR text. Labels stay short so that
a BERT-sized graph is still readable, and drawn in seconds.

A graph annotated with a parallel plan (values with an `sbp`, ir/passes/parallel/annotate.py)
is drawn by placement instead: each op coloured by how its outputs lie over the mesh (whole on
every device, split on axis 0, split on another axis, partial sums), its signature under its
name, edges labelled with type and SBP and coloured alike, Boxing nodes as yellow hexagons
listing their collectives, and a legend under the title. In a physical graph the collectives
are orange hexagons.
"""
from __future__ import annotations

import html
import zlib
from pathlib import Path

import numpy as np

from flowc.errors import CompileError, FlowcError, quote_name

from .graph import Graph, Node, Value
from .sbp import format_sbp
from .text import format_scalar, print_node
from .types import TensorType, dtype

FOLD_LIMIT = 8          # constants of at most this many elements are written into their consumer
MAX_ATTRS = 4           # attributes shown per node; the tooltip has all of them
MAX_TEXT = 28           # characters of a name or attribute value before it is cut
EDGE_LABEL_LIMIT = 150  # larger graphs get no edge labels: they make dot's layout ~10x slower

FAMILY_COLOURS = {
    "elementwise": "#dbe9f6",
    "linalg": "#fbd9b5",
    "nn": "#d5efd0",
    "reduce": "#f3d3e6",
    "tensor": "#e6e6e6",
    "comm": "#fff2a8",
    "boxing": "#fff2a8",
}
_SPARE_COLOURS = ("#d9d2f0", "#c9ece8", "#f6e0c6", "#e2edc5", "#f0d0d0")
INPUT_COLOUR, OUTPUT_COLOUR, CONST_COLOUR = "#b9e4b9", "#ffd97a", "#f7f7f7"

# placements of an op in a parallel plan: (fill of its node, colour of the edges it sends)
PLACEMENTS = {
    "replicated": ("#e6e6e6", "#777777"),
    "split on axis 0": ("#cfe3f7", "#3a78c2"),
    "split on another axis": ("#d5efd0", "#3c9a3c"),
    "partial sums": ("#f9d3a9", "#d9822b"),
}
BOXING_FILL, BOXING_LINE = "#fff2a8", "#b58900"
BOXING_STYLE = f'shape=hexagon, style=filled, fillcolor="{BOXING_FILL}", color="{BOXING_LINE}", penwidth=1.6'
COLLECTIVE_STYLE = 'shape=hexagon, style=filled, fillcolor="#ffc266", color="#b35900", penwidth=1.6'

# format of each file extension; None: the dot source itself
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": None, ".gv": None}


class GraphvizNotFound(FlowcError):
    """Graphviz's `dot` program is not installed; the dot source was written instead."""


def family_colour(family: str) -> str:
    if family in FAMILY_COLOURS:
        return FAMILY_COLOURS[family]
    return _SPARE_COLOURS[zlib.crc32(family.encode()) % len(_SPARE_COLOURS)]


# -- text helpers ------------------------------------------------------------------------

def _visible(text: str) -> str:
    """Control characters (newlines, tabs, ...) written as escapes, so a label stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _html(text: str) -> str:
    """Text for inside an HTML-like label."""
    return html.escape(_visible(text), quote=True)


def _quoted(text: str) -> str:
    """A dot double-quoted string (for tooltips)."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _cut(text: str, limit: int = MAX_TEXT, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1):] if keep_end else text[:limit - 1] + "…"


def _short_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_short_value(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        if value.size <= 4:
            return _elements(value)
        return f"tensor {TensorType(dtype(value.dtype), value.shape)}"
    return str(value)


def _elements(array: np.ndarray) -> str:
    dt = dtype(array.dtype)
    items = [format_scalar(x, dt) for x in array.reshape(-1)]
    return items[0] if array.ndim == 0 else "[" + ",".join(items) + "]"


def _input_role(node: Node, i: int) -> str:
    """The name the op gives its i-th input (`B`, `shape`, ...)."""
    names = node.opdef.inputs
    if i < len(names) and not names[i].endswith(("*", "+")):
        return names[i].rstrip("?")
    return f"{names[-1].rstrip('*+?')}{i - len(names) + 1}" if names else str(i)


def _type(v: Value) -> str:
    return str(v.type) if v.type is not None else "untyped"


def _typed(v: Value) -> str:
    """The type, and its SBP where the value has one, as the IR text writes them."""
    return _type(v) if v.sbp is None else f"{_type(v)} @ {format_sbp(v.sbp)}"


def placement(sbps) -> str:
    """How tensors in these SBPs lie, as PLACEMENTS names it: partial sums over any split, a split
    on another axis over one on axis 0."""
    parts = [s for nd in sbps for s in nd]
    if any(s.kind == "P" for s in parts):
        return "partial sums"
    if any(s.is_split and s.axis != 0 for s in parts):
        return "split on another axis"
    if any(s.is_split for s in parts):
        return "split on axis 0"
    return "replicated"


def _placed(node: Node) -> bool:
    return all(v.sbp is not None for v in node.outputs) and bool(node.outputs)


def _signature(node: Node) -> str:
    ins = ", ".join("-" if v is None or v.sbp is None else format_sbp(v.sbp) for v in node.inputs)
    return f"{ins} → {', '.join(format_sbp(v.sbp) for v in node.outputs)}"


# -- dot source ----------------------------------------------------------------------------

def _is_folded(v: Value) -> bool:
    return v.const is not None and v.const.size <= FOLD_LIMIT


def _node_label(node: Node) -> str:
    rows = [f"<b>{_html(node.op)}</b>"]
    types = [_type(v) for v in node.outputs]
    shown = ", ".join(types[:3]) + (f", +{len(types) - 3}" if len(types) > 3 else "")
    rows.append(f'<font point-size="9">{_html(shown)}</font>')
    if _placed(node):
        rows.append(f'<font point-size="9" color="#203060">{_html(_cut(_signature(node), 3 * MAX_TEXT))}</font>')
    details = [f"{k}={_cut(_short_value(v))}" for k, v in node.attrs.items()]
    if len(details) > MAX_ATTRS:
        details = details[:MAX_ATTRS] + [f"+{len(details) - MAX_ATTRS} more"]
    for i, v in enumerate(node.inputs):
        if v is not None and v.producer is None and _is_folded(v):
            details.append(f"{_input_role(node, i)}={_cut(_elements(v.const))}")
    for start in range(0, len(details), 2):
        rows.append(f'<font point-size="8" color="#444444">{_html(", ".join(details[start:start + 2]))}</font>')
    return "<" + "<br/>".join(rows) + ">"


def _boxing_label(node: Node) -> str:
    rows = [f"<b>{_html(node.op)}</b>",
            f'<font point-size="10">{_html(node.attr("from"))} → {_html(node.attr("to"))}</font>']
    rows += [f'<font point-size="8" color="#444444">{_html(step)}</font>' for step in node.attr("steps")]
    return "<" + "<br/>".join(rows) + ">"


def _legend(title: str) -> str:
    """The title above one cell per placement, each in its colour, and one for boxing."""
    cells = "".join(f'<td bgcolor="{fill}" border="1" color="{edge}"><font point-size="9">{_html(name)}</font></td>'
                    for name, (fill, edge) in PLACEMENTS.items())
    cells += f'<td bgcolor="{BOXING_FILL}" border="1" color="{BOXING_LINE}"><font point-size="9">boxing</font></td>'
    return (f'<<table border="0" cellspacing="4" cellpadding="3"><tr><td colspan="{len(PLACEMENTS) + 1}">'
            f"<b>{_html(title)}</b></td></tr><tr>{cells}</tr></table>>")


def _value_label(v: Value) -> str:
    return f'<<b>{_html(_cut(v.name, keep_end=True))}</b><br/><font point-size="9">{_html(_typed(v))}</font>>'


def _const_box(node_id: str, v: Value) -> str:
    label = f'<<font point-size="8">{_html(_cut(v.name, keep_end=True))}<br/>{_html(_typed(v))}</font>>'
    tooltip = _quoted(f"constant {quote_name(v.name)}: {_typed(v)}")
    return (f'  {node_id} [shape=box, style=filled, fillcolor="{CONST_COLOUR}", color="#aaaaaa", height=0.2, '
            f'margin="0.06,0.02", label={label}, tooltip={tooltip}];')


def to_dot(graph: Graph, title: str | None = None, *, edge_labels: bool | None = None) -> str:
    """The graph as Graphviz dot source, top to bottom. Edges carry their tensor's type (and SBP)
    when `edge_labels` (by default, in graphs of at most EDGE_LABEL_LIMIT nodes)."""
    title = graph.name if title is None else title
    if edge_labels is None:
        edge_labels = len(graph.nodes) <= EDGE_LABEL_LIMIT
    planned = any(v.sbp is not None for v in graph.values())

    def edge_label(v: Value) -> str:
        label = f", label={_quoted(' ' + _typed(v))}" if edge_labels else ""
        if v.sbp is not None:
            label += f', color="{PLACEMENTS[placement([v.sbp])][1]}"'
        return label

    lines = [
        "digraph flowc {",
        "  rankdir=TB; nodesep=0.25; ranksep=0.3; newrank=true;",
        f"  label={_legend(title) if planned else f'<<b>{_html(title)}</b>>'}; "
        'labelloc=t; fontname="Helvetica"; fontsize=14;',
        '  node [fontname="Helvetica", fontsize=11, shape=box, style="rounded,filled", '
        'margin="0.12,0.04", height=0.3, penwidth=0.8];',
        '  edge [fontname="Helvetica", fontsize=8, fontcolor="#555555", color="#777777", arrowsize=0.6];',
    ]
    ids: dict[int, str] = {}   # id(value) -> the dot node it comes out of
    for i, v in enumerate(graph.inputs):
        ids[id(v)] = f"in{i}"
        lines.append(f'  in{i} [shape=invhouse, style=filled, fillcolor="{INPUT_COLOUR}", '
                     f"label={_value_label(v)}, tooltip={_quoted('input ' + quote_name(v.name))}];")
    const_index = {id(v): i for i, v in enumerate(graph.constants)}
    for i, node in enumerate(graph.nodes):
        for v in node.outputs:
            ids[id(v)] = f"n{i}"
        family = node.opdef.family
        if family == "boxing":
            style = f"{BOXING_STYLE}, label={_boxing_label(node)}"
        elif family == "collective":
            style = f"{COLLECTIVE_STYLE}, label={_node_label(node)}"
        else:
            colour = PLACEMENTS[placement(v.sbp for v in node.outputs)][0] if _placed(node) \
                else family_colour(family)
            style = f'fillcolor="{colour}", label={_node_label(node)}'
        lines.append(f"  n{i} [{style}, tooltip={_quoted(print_node(node))}];")
        for k, v in enumerate(node.inputs):
            if v is None or (v.producer is None and _is_folded(v)):
                continue
            if id(v) in const_index:
                # a box per use: a weight shared by far-apart nodes would stretch edges across
                # the whole picture (and make dot's layout very slow)
                source = f"c{const_index[id(v)]}_{i}_{k}"
                lines.append(_const_box(source, v))
                lines.append(f"  {source} -> n{i} [tooltip={_quoted(quote_name(v.name))}];")
            else:
                lines.append(f"  {ids[id(v)]} -> n{i} [tooltip={_quoted(quote_name(v.name))}{edge_label(v)}];")
    for i, v in enumerate(graph.outputs):
        lines.append(f'  out{i} [shape=house, style=filled, fillcolor="{OUTPUT_COLOUR}", '
                     f"label={_value_label(v)}, tooltip={_quoted('output ' + quote_name(v.name))}];")
        if id(v) in const_index:
            ids[id(v)] = f"c{const_index[id(v)]}"
            lines.append(_const_box(ids[id(v)], v))
        lines.append(f"  {ids[id(v)]} -> out{i} [tooltip={_quoted(quote_name(v.name))}{edge_label(v)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- rendering --------------------------------------------------------------------------------

def render(graph: Graph, path, title: str | None = None, *, edge_labels: bool | None = None) -> Path:
    """Write the picture to `path`, its format given by the extension (.svg, .png, .pdf, or
    .dot for the source). Without Graphviz installed, writes the .dot beside and raises
    GraphvizNotFound saying how to install it."""
    import graphviz

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise CompileError(f"cannot tell the picture format of {quote_name(str(path))}; "
                           f"give a file ending in {', '.join(FORMATS)}")
    source = to_dot(graph, title, edge_labels=edge_labels)
    if FORMATS[suffix] is None:
        path.write_text(source, encoding="utf-8")
        return path
    try:
        data = graphviz.Source(source).pipe(format=FORMATS[suffix])
    except graphviz.ExecutableNotFound:
        dot_path = path.with_suffix(".dot")
        dot_path.write_text(source, encoding="utf-8")
        raise GraphvizNotFound(
            f"Graphviz's `dot` program was not found on PATH, so {quote_name(str(path))} was not drawn; "
            f"wrote its source to {quote_name(str(dot_path))}. Install Graphviz (apt-get install graphviz, "
            f"or brew install graphviz) and run again, or run: dot -T{FORMATS[suffix]} {dot_path} -o {path}"
        ) from None
    except graphviz.CalledProcessError as e:
        message = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise CompileError(f"Graphviz failed to draw {quote_name(str(path))}: "
                           f"{message[0] if message else e}") from None
    path.write_bytes(data)
    return path


__all__ = ["FAMILY_COLOURS", "PLACEMENTS", "GraphvizNotFound", "family_colour", "placement", "render", "to_dot"]
