"""Graphviz pictures: labels escaped, constants small or folded, colours by family, real `dot`."""
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import flowc
from flowc.ir import viz

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")

HOSTILE = 'a "quoted"\nname <b>&amp; \\ back\\slash'
SVG = "{http://www.w3.org/2000/svg}"


def small_graph(name="small"):
    b = flowc.GraphBuilder(name)
    x = b.input("x", "f32", ["B", 8])
    h = b.relu(x @ np.ones((8, 8), np.float32) + 1.0)
    p, q = b.split(h, axis=1, num_outputs=2)
    b.output(b.leaky_relu(p, alpha=0.25), name="y")
    b.output(q, name="z")
    return b.build()


def hostile_graph():
    b = flowc.GraphBuilder(HOSTILE)
    x = b.input(HOSTILE, "f32", [4])
    w = b.const(np.arange(64, dtype=np.float32).reshape(16, 4), name=HOSTILE + " weight")
    y = b.matmul(w, x, name=HOSTILE + " node")
    b.output(y, name=HOSTILE + " out")
    return b.build()


def svg_texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


# -- dot source ----------------------------------------------------------------------------------

def test_every_label_is_escaped():
    source = viz.to_dot(hostile_graph())
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', source)
    assert "<b>&amp; " not in outside_strings and "\n" + HOSTILE not in source
    assert "a &quot;quoted&quot;\\nname &lt;b&gt;&amp;amp; \\ back\\slash" in source
    for line in source.splitlines()[1:-1]:    # one statement per line: no raw newline escaped a string
        assert line.startswith("  ") and line.rstrip().endswith(";"), line


def test_nodes_show_op_types_attributes_and_family_colours():
    source = viz.to_dot(small_graph())
    assert "<b>MatMul</b>" in source and "<b>Split</b>" in source
    assert "alpha=0.25" in source and "axis=1, num_outputs=2" in source
    assert f'fillcolor="{viz.family_colour("elementwise")}", label=<<b>Relu</b>' in source
    assert viz.family_colour("linalg") != viz.family_colour("elementwise")
    assert viz.family_colour("someday") == viz.family_colour("someday")   # unknown families are stable


def test_inputs_outputs_and_constants_have_their_own_shapes():
    source = viz.to_dot(small_graph())
    assert source.count("shape=invhouse") == 1 and source.count("shape=house") == 2
    assert "B=1.0" in source                      # a scalar is folded into its consumer
    assert 'label=<<font point-size="8">c<br/>f32[8,8]</font>>' in source   # a weight is a small box


def test_edges_carry_tensor_types_until_graphs_get_large():
    assert 'label=" f32[B,8]"' in viz.to_dot(small_graph())
    assert 'label=" f32[B,8]"' not in viz.to_dot(small_graph(), edge_labels=False)
    b = flowc.GraphBuilder("long")
    h = b.input("x", "f32", [4])
    for _ in range(viz.EDGE_LABEL_LIMIT + 1):
        h = b.relu(h)
    b.output(h)
    assert 'label=" f32[4]"' not in viz.to_dot(b.build())


def test_a_shared_weight_is_drawn_beside_each_user():
    b = flowc.GraphBuilder("shared")
    x = b.input("x", "f32", [2, 8])
    w = b.const(np.ones((8, 8), np.float32), name="w")
    b.output(b.matmul(b.relu(b.matmul(x, w)), w), name="y")
    source = viz.to_dot(b.build())
    assert source.count("tooltip=\"constant \\\"w\\\": f32[8,8]\"") == 2


# -- rendering with dot -------------------------------------------------------------------------------

@needs_dot
def test_render_writes_a_valid_svg(tmp_path):
    path = viz.render(hostile_graph(), tmp_path / "g.svg")
    texts = svg_texts(path.read_bytes())
    assert "MatMul" in texts and "f32[16]" in texts
    assert any('a "quoted"\\nname <b>&amp;' in t for t in texts)


@needs_dot
@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".dot", b"digraph")])
def test_render_picks_the_format_from_the_extension(tmp_path, suffix, magic):
    path = viz.render(small_graph(), tmp_path / f"g{suffix}")
    assert path.read_bytes().startswith(magic)


def test_render_refuses_an_unknown_extension(tmp_path):
    with pytest.raises(flowc.CompileError) as e:
        viz.render(small_graph(), tmp_path / "g.jpeg")
    assert str(e.value) == (f'cannot tell the picture format of "{tmp_path / "g.jpeg"}"; '
                            "give a file ending in .svg, .png, .pdf, .dot, .gv")


def test_without_dot_the_source_is_written_and_the_user_told_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-graphviz-here"))
    with pytest.raises(viz.GraphvizNotFound) as e:
        viz.render(small_graph(), tmp_path / "g.svg")
    message = str(e.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert f"dot -Tsvg {tmp_path / 'g.dot'} -o {tmp_path / 'g.svg'}" in message
    assert (tmp_path / "g.dot").read_text() == viz.to_dot(small_graph())
    assert not (tmp_path / "g.svg").exists()
    assert isinstance(e.value, flowc.FlowcError)


@needs_dot
def test_a_transformer_sized_graph_renders(tmp_path):
    """Hundreds of nodes with shared weights: what made dot's layout crawl before (minutes)."""
    b = flowc.GraphBuilder("tower")
    h = b.input("x", "f32", ["B", 16, 32])
    gamma, w = b.const(np.ones(32, np.float32), "gamma"), b.const(np.ones((32, 32), np.float32), "w")
    for _ in range(40):
        a = b.layer_normalization(h, gamma, axis=-1)
        s = b.softmax(a @ w, axis=-1)
        h = h + b.gelu(s * a) @ w
    b.output(h, name="y")
    graph = b.build()
    assert len(graph.nodes) >= 250
    assert viz.render(graph, tmp_path / "tower.svg").stat().st_size > 0
