"""The `flowc` command, run as a user runs it: a subprocess, real files, real `dot`."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import flowc
from flowc import cli, ir

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
PASSES = [p.name for p in ir.passes.PIPELINE]


def flowc_cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowc", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd)


def assert_one_line_error(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"flowc: error: {message}\n"
    assert "Traceback" not in done.stderr


def save_model(path: Path, nodes, inputs, outputs, inits=(), opset=17, domains=()) -> Path:
    graph = helper.make_graph(nodes, "cli", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


@pytest.fixture
def mlp(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (16, 32)), ("b1", (32,)), ("w2", (32, 10)), ("b2", (10,)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
             helper.make_node("Add", ["h3", "b2"], ["y"])]
    return save_model(tmp_path / "mlp.onnx", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 16])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 10])], inits)


@pytest.fixture
def compiled(tmp_path, mlp) -> Path:
    out = tmp_path / "build"
    assert flowc_cli("compile", mlp, "--target", "reference", "-o", out).returncode == 0
    return out


@pytest.fixture
def x_npy(tmp_path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.linspace(-1, 1, 32, dtype=np.float32).reshape(2, 16))
    return path


# -- compile ------------------------------------------------------------------------------------------

def test_compile_writes_an_artifact(tmp_path, mlp):
    out = tmp_path / "build"
    done = flowc_cli("compile", mlp, "--target", "reference", "-o", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"flowc: wrote {out} (target reference, ") and done.stderr == ""
    assert sorted(p.name for p in out.iterdir()) == ["artifact.json", "model.fir", "weights.npz"]


def test_compile_pins_input_shapes(tmp_path, mlp):
    out = tmp_path / "build"
    done = flowc_cli("compile", mlp, "--target", "reference", "-o", out, "--input-shape", "x=8,16")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "artifact.json").read_text())["inputs"][0]["shape"] == [8, 16]


def test_compile_dumps_the_ir_after_each_pass(tmp_path, mlp):
    dump = tmp_path / "ir"
    done = flowc_cli("compile", mlp, "--target", "reference", "-o", tmp_path / "build", "--dump-ir", dump)
    assert done.returncode == 0, done.stderr
    names = ["00-import.fir"] + [f"{i:02d}-{name}.fir" for i, name in enumerate(PASSES, 1)]
    assert sorted(p.name for p in dump.iterdir()) == names
    first = ir.parse((dump / names[0]).read_text())
    assert [str(v.type) for v in first.inputs] == ["f32[B,16]"]
    assert (dump / names[-1]).read_text() == (tmp_path / "build" / "model.fir").read_text()


def test_compile_report_and_verbose_progress(tmp_path, mlp):
    done = flowc_cli("compile", mlp, "--target", "reference", "-o", tmp_path / "build", "--report", "--verbose")
    assert done.returncode == 0, done.stderr
    assert "inputs:  x: f32[B,16]" in done.stdout and "outputs: y: f32[B,10]" in done.stdout
    assert "stages:" in done.stdout and "ops (" in done.stdout and "MatMul" in done.stdout
    stages = [line.split(":")[1].strip() for line in done.stderr.splitlines()]
    assert stages == ["import", *PASSES, "write"]
    for section in ("fusion:", "ops after fusion", "kernels (", "arena (", "weights:"):   # target cpu only
        assert section not in done.stdout


@pytest.mark.parametrize("args,message", [
    ([], 'tensor "x" has type f32[B,16]: target cpu needs static shapes; pin the input shapes (input_shapes= in flowc.compile, --input-shape NAME=D0,D1,... for flowc compile) or bound a symbolic batch (max_batch=N, --max-batch N)'),
    (["--target", "cuda"], 'tensor "x" has type f32[B,16]: target cuda needs static shapes; pin the input shapes (input_shapes= in flowc.compile, --input-shape NAME=D0,D1,... for flowc compile)'),
    (["--target", "reference", "--devices", "2"],
     'tensor "x" has type f32[B,16]: a plan over several devices needs static shapes; pin the input shapes '
     '(input_shapes= in flowc.compile, --input-shape NAME=D0,D1,... for flowc compile)'),
    (["--target", "reference", "--devices", "2", "--input-shape", "x=8,16", "--sbp", "x"],
     "--sbp 'x': expected NAME=SBP, e.g. x=S(0)"),
    (["--target", "reference", "--mesh", "2x2x2", "--input-shape", "x=8,16"],
     "mesh '2x2x2': flowc plans 1-D and 2-D meshes"),
    (["--target", "reference", "--input-shape", "x=8,a"],
     "--input-shape 'x=8,a': expected NAME=D0,D1,... with integer dims, e.g. x=1,3,224,224"),
    (["--target", "reference", "--input-shape", "q=8,16"],
     'input_shapes names "q", which is not an input; the model\'s inputs are "x": f32[B,16]'),
    (["--target", "reference", "--input-shape", "x=8,15"],
     'input_shapes: input "x" expects shape [B, 16], got [8, 15] (axis 1 should be 16)'),
])
def test_compile_errors_are_one_line(tmp_path, mlp, args, message):
    assert_one_line_error(flowc_cli("compile", mlp, "-o", tmp_path / "build", *args), message)
    assert not (tmp_path / "build").exists()


def test_compile_of_a_missing_or_broken_model(tmp_path):
    missing = tmp_path / "missing.onnx"
    assert_one_line_error(flowc_cli("compile", missing, "--target", "reference", "-o", tmp_path / "b"),
                          f'model file "{missing}" does not exist')
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\xff\xff not protobuf")
    done = flowc_cli("compile", broken, "--target", "reference", "-o", tmp_path / "b")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f'flowc: error: "{broken}" is not a valid ONNX model')


def test_compile_names_an_unsupported_op(tmp_path):
    model = save_model(tmp_path / "odd.onnx", [helper.make_node("FooBar", ["x"], ["y"], name="odd")],
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    done = flowc_cli("compile", model, "--target", "reference", "-o", tmp_path / "b")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("flowc: error: FooBar node \"odd\": op 'FooBar' (opset 17) is not supported")


def test_debug_shows_the_traceback(tmp_path, mlp):
    done = flowc_cli("--debug", "compile", mlp, "-o", tmp_path / "build")
    assert done.returncode == 2
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert done.stderr.endswith("flowc: error: tensor \"x\" has type f32[B,16]: target cpu needs static shapes; "
                                "pin the input shapes (input_shapes= in flowc.compile, "
                                "--input-shape NAME=D0,D1,... for flowc compile) or bound a symbolic batch "
                                "(max_batch=N, --max-batch N)\n")


def test_debug_turns_on_the_verifier_after_each_pass(tmp_path, mlp, monkeypatch, capsys):
    monkeypatch.delenv("FLOWC_DEBUG", raising=False)
    assert cli.main(["compile", str(mlp), "--target", "reference", "-o", str(tmp_path / "b"), "--debug"]) == 0
    assert os.environ["FLOWC_DEBUG"] == "1"


def test_usage_errors_exit_2():
    done = flowc_cli("compile")
    assert done.returncode == 2 and "usage: flowc compile" in done.stderr
    assert flowc_cli().returncode == 2
    assert flowc_cli("--version").stdout == f"flowc {flowc.__version__}\n"


# -- run --------------------------------------------------------------------------------------------

def test_run_prints_each_output(compiled, x_npy):
    done = flowc_cli("run", compiled, "--input", f"x={x_npy}")
    assert done.returncode == 0, done.stderr
    y = flowc.load(compiled).run({"x": np.load(x_npy)})["y"]
    assert done.stdout.startswith("y: f32[2,10]  [")
    assert done.stdout.rstrip().endswith(", ...]") and f"{y[0, 0]:.4f}"[:5] in done.stdout


def test_run_saves_outputs_to_npz(tmp_path, compiled, x_npy):
    out = tmp_path / "out.npz"
    done = flowc_cli("run", compiled, "--input", f"x={x_npy}", "-o", out)
    assert done.returncode == 0, done.stderr
    with np.load(out, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["y"], flowc.load(compiled).run({"x": np.load(x_npy)})["y"])


def test_run_errors_are_one_line(tmp_path, compiled, x_npy):
    assert_one_line_error(flowc_cli("run", compiled), 'missing input "x"; the model takes "x": f32[B,16]')
    assert_one_line_error(flowc_cli("run", compiled, "--input", f"q={x_npy}"),
                          f"--input 'q={x_npy}': expected NAME=FILE.npy with NAME one of \"x\"")
    assert_one_line_error(flowc_cli("run", compiled, "--input", f"x={tmp_path / 'none.npy'}"),
                          f"No such file or directory: {tmp_path / 'none.npy'}")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 15), np.float32))
    assert_one_line_error(flowc_cli("run", compiled, "--input", f"x={wrong}"),
                          'input "x": expected shape [B, 16], got [2, 15] (axis 1 should be 16)')
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    done = flowc_cli("run", compiled, "--input", f"x={pickled}")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f'flowc: error: input "x": {pickled} is not a readable .npy file')
    assert_one_line_error(flowc_cli("run", tmp_path / "nowhere", "--input", f"x={x_npy}"),
                          f'artifact "{tmp_path / "nowhere"}" does not exist; compile the model first '
                          f'(flowc compile MODEL -o "{tmp_path / "nowhere"}")')


# -- viz ----------------------------------------------------------------------------------------------

@needs_dot
def test_viz_draws_an_svg(tmp_path, mlp):
    out = tmp_path / "graph.svg"
    done = flowc_cli("viz", mlp, "-o", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"flowc: wrote {out}\n"
    assert out.read_text().lstrip().startswith("<?xml") and "MatMul" in out.read_text()


@needs_dot
def test_viz_after_all_draws_every_stage(tmp_path, mlp):
    done = flowc_cli("viz", mlp, "-o", tmp_path / "graph.svg", "--after", "all", "--input-shape", "x=4,16")
    assert done.returncode == 0, done.stderr
    names = ["graph.00-import.svg"] + [f"graph.{i:02d}-{name}.svg" for i, name in enumerate(PASSES, 1)]
    assert sorted(p.name for p in tmp_path.glob("graph.*.svg")) == names
    assert "f32[4,16]" in (tmp_path / names[0]).read_text()


@needs_dot
def test_viz_after_one_pass(tmp_path, mlp):
    out = tmp_path / "graph.png"
    done = flowc_cli("viz", mlp, "-o", out, "--after", PASSES[0])
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"\x89PNG")


def test_viz_of_a_parallel_plan(tmp_path, mlp):
    out = tmp_path / "plan.dot"
    done = flowc_cli("viz", mlp, "-o", out, "--input-shape", "x=8,16", "--devices", "2", "--sbp", "x=S(1)")
    assert done.returncode == 0, done.stderr
    dot = out.read_text()
    assert "on mesh 2" in dot and "Boxing" in dot and "@ S(1)" in dot and "hexagon" in dot
    physical = tmp_path / "physical.dot"
    done = flowc_cli("viz", mlp, "-o", physical, "--input-shape", "x=8,16", "--mesh", "2x2", "--sbp", "x=(S(0), S(1))",
                     "--physical")
    assert done.returncode == 0, done.stderr
    assert "what each rank of mesh 2x2 runs" in physical.read_text() and "AllGather" in physical.read_text()
    one = flowc_cli("viz", mlp, "-o", tmp_path / "one.dot", "--mesh", "1")   # one device: the plain graph
    assert one.returncode == 0, one.stderr
    assert "Boxing" not in (tmp_path / "one.dot").read_text()
    assert_one_line_error(flowc_cli("viz", mlp, "-o", out, "--devices", "2", "--after", "all"),
                          "--after draws single-device passes; a plan for --devices/--mesh is drawn after all of them")


def test_compile_explain_prints_the_plan(tmp_path, mlp, x_npy):
    done = flowc_cli("compile", mlp, "--target", "reference", "-o", tmp_path / "b", "--input-shape", "x=2,16",
                     "--devices", "2", "--sbp", "x=S(1)", "--explain")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"flowc: wrote {tmp_path / 'b'} (target reference, mesh 2, {len(lines) and lines[0].split(', ')[-1]}"
    assert lines[1].startswith("mesh 2 (cpu; links shm): predicted ")
    header = lines[3].split()
    assert header == ["op", "node", "signature", "cost", "runner-up", "its", "cost"]
    assert any(line.split()[0] == "MatMul" and "->" in line for line in lines[4:])
    assert any(line.strip().startswith('"x": B -> S(1): LocalSlice[mesh_axis=0, axis=1]') for line in lines)
    done = flowc_cli("run", tmp_path / "b", "--input", f"x={x_npy}")
    assert done.returncode == 0, done.stderr
    single = flowc_cli("compile", mlp, "--target", "reference", "-o", tmp_path / "one", "--explain")
    assert "one device, so there is no parallel plan to explain" in single.stdout


def test_viz_of_an_ir_text_file(tmp_path, compiled):
    out = tmp_path / "model.dot"
    assert flowc_cli("viz", compiled / "model.fir", "-o", out).returncode == 0
    assert out.read_text().startswith("digraph flowc {")


def test_viz_errors_are_one_line(tmp_path, mlp):
    assert_one_line_error(flowc_cli("viz", mlp, "-o", tmp_path / "g.svg", "--after", "nothing"),
                          f"--after 'nothing': no such pass in the pipeline; passes: {', '.join(PASSES)}, or all")
    assert_one_line_error(flowc_cli("viz", mlp, "-o", tmp_path / "g.bmp"),
                          f'cannot tell the picture format of "{tmp_path / "g.bmp"}"; '
                          "give a file ending in .svg, .png, .pdf, .dot, .gv")


def test_viz_without_graphviz_writes_the_dot_file(tmp_path, mlp):
    env = dict(os.environ, PATH=str(tmp_path / "empty"))
    out = tmp_path / "graph.svg"
    done = flowc_cli("viz", mlp, "-o", out, env=env)
    assert_one_line_error(done, f"Graphviz's `dot` program was not found on PATH, so \"{out}\" was not drawn; "
                                f"wrote its source to \"{tmp_path / 'graph.dot'}\". Install Graphviz "
                                "(apt-get install graphviz, or brew install graphviz) and run again, or run: "
                                f"dot -Tsvg {tmp_path / 'graph.dot'} -o {out}")
    assert (tmp_path / "graph.dot").read_text().startswith("digraph flowc {")


# -- inspect -------------------------------------------------------------------------------------------

def test_inspect_lists_every_unsupported_op(tmp_path):
    nodes = [helper.make_node("FooBar", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("FooBar", ["b"], ["c"]),
             helper.make_node("FusedMatMul", ["c", "c"], ["d"], domain="com.microsoft"),
             helper.make_node("Add", ["d", "w"], ["y"])]
    model = save_model(tmp_path / "odd.onnx", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                       [numpy_helper.from_array(np.ones(3, np.float32), "w")], domains=["com.microsoft"])
    done = flowc_cli("inspect", model)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "opsets:   ai.onnx 17, com.microsoft 1" in lines
    assert lines[lines.index("inputs:") + 1] == "  x: f32[N,3]"
    assert lines[lines.index("outputs:") + 1] == "  y: f32[N,3]"
    assert "initializers: 1 (3 elements)" in lines and "ops (5 nodes):" in lines
    assert any(line.split() == ["FooBar", "2"] for line in lines)
    assert lines[-1] == "not supported by flowc: FooBar (2), com.microsoft.FusedMatMul (1)"


def test_inspect_a_supported_model(mlp):
    done = flowc_cli("inspect", mlp)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "flowc supports every op of this model"


def test_inspect_a_missing_model(tmp_path):
    assert_one_line_error(flowc_cli("inspect", tmp_path / "none.onnx"),
                          f'model file "{tmp_path / "none.onnx"}" does not exist')


@pytest.mark.skipif(shutil.which("flowc") is None, reason="the flowc console script is not installed")
def test_the_console_script(mlp):
    done = subprocess.run(["flowc", "inspect", str(mlp)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("model:")


def test_run_saves_outputs_whatever_their_names(tmp_path, x_npy):
    b = flowc.GraphBuilder("names")
    x = b.input("x", "f32", ["B", 16])
    for name in ("file", "allow_pickle", "a/b"):   # np.savez(f, **outputs) drops or chokes on these
        b.output(b.relu(x), name=name)
    artifact = flowc.compile(b.build(), target="reference", out_dir=tmp_path / "names")
    done = flowc_cli("run", artifact.path, "--input", f"x={x_npy}", "-o", tmp_path / "out.npz")
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "out.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["a/b", "allow_pickle", "file"]
        np.testing.assert_array_equal(npz["file"], np.maximum(np.load(x_npy), 0))


def test_run_refuses_an_empty_npy(tmp_path, compiled):
    (tmp_path / "empty.npy").write_bytes(b"")
    done = flowc_cli("run", compiled, "--input", f"x={tmp_path / 'empty.npy'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f'flowc: error: input "x": {tmp_path / "empty.npy"} is not a readable .npy file: ')


def test_viz_refuses_ir_text_that_is_not_utf8(tmp_path):
    bad = tmp_path / "bad.fir"
    bad.write_bytes(b"graph g(%x: f32[2]) {\xff\n")
    assert_one_line_error(flowc_cli("viz", bad, "-o", tmp_path / "g.dot"),
                          f'"{bad}" is not UTF-8 text (byte 21): IR text is UTF-8')


def test_inspect_a_folder(tmp_path):
    assert_one_line_error(flowc_cli("inspect", tmp_path), f'model file "{tmp_path}" is a folder, not a file')


def test_compile_for_cpu_then_run(tmp_path, mlp, x_npy):
    out = tmp_path / "cpu"
    done = flowc_cli("compile", mlp, "--target", "cpu", "--input-shape", "x=2,16", "-o", out, "--report")
    assert done.returncode == 0, done.stderr
    assert "emit" in done.stdout and "build" in done.stdout
    ran = flowc_cli("run", out, "--input", f"x={x_npy}", "-o", tmp_path / "y.npz")
    assert ran.returncode == 0, ran.stderr
    reference = flowc.compile(mlp, target="reference", out_dir=tmp_path / "ref", input_shapes={"x": [2, 16]})
    want = flowc.ir.run(reference.graph, {"x": np.load(x_npy)})["y"]
    with np.load(tmp_path / "y.npz") as got:
        np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-5)


def test_compile_for_cpu_shows_its_build_once(tmp_path, mlp):
    env = dict(os.environ, FLOWC_CACHE_DIR=str(tmp_path / "empty-cache"))   # cold: the runtime builds too
    out = tmp_path / "cpu"
    args = ("compile", mlp, "--target", "cpu", "--input-shape", "x=2,16", "-o", out)
    cold = flowc_cli(*args, env=env)
    assert cold.returncode == 0, cold.stderr
    lines = cold.stderr.splitlines()
    assert lines[0] == f"flowc: building {out} (cmake, 2 jobs)..."
    steps = [line for line in lines if line.startswith("flowc: build [")]
    assert all(re.fullmatch(r"flowc: build \[[ \d]{2}\d%\] \S.*", line) for line in steps), steps
    assert "runtime/kernels/cpu/gemm.cpp" in [line.split("] ", 1)[1] for line in steps]
    assert "model.cpp" in [line.split("] ", 1)[1] for line in steps]
    assert all(line in steps or line.startswith("flowc: build: ") for line in lines[1:])   # a slow stage's line
    assert cold.stdout.startswith(f"flowc: wrote {out} (target cpu, ")
    warm = flowc_cli(*args, env=env)   # up to date: nothing to say
    assert warm.returncode == 0 and warm.stderr == "" and warm.stdout == cold.stdout


def _report_bytes(stdout: str, label: str) -> int:
    line = next(line for line in stdout.splitlines() if line.strip().startswith(label))
    return int(line.split(label, 1)[1].split(" B")[0].replace(",", ""))


def test_compile_report_for_cpu(tmp_path, mlp):
    done = flowc_cli("compile", mlp, "--target", "cpu", "--input-shape", "x=2,16", "-o", tmp_path / "cpu", "--report")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # the stages first, emit and build among them, then the ops before and after fusion
    stages = lines[lines.index("stages:") + 1:lines.index("ops (5):")]
    assert [line.split()[0] for line in stages] == ["import", *PASSES, "write", "emit", "build", "total"]
    assert all(line.endswith(" ms") for line in stages)
    assert "fusion: 5 ops -> 2 ops (2 fused), 2 kernel steps" in lines
    after = lines[lines.index("ops after fusion (2):") + 1]
    assert after.split()[:2] == ["FusedMatMul", "2"] and after.endswith("(absorbs Add 2, Relu 1)")
    kernels = lines[lines.index("kernels (2):") + 1]
    assert kernels.split()[:2] == ["gemm", "2"] and kernels.endswith("(2 with epilogue)")
    # the arena against the live-set bound and against no reuse, consistent
    peak, bound = _report_bytes(done.stdout, "peak"), _report_bytes(done.stdout, "live-set lower bound")
    no_reuse = _report_bytes(done.stdout, "no reuse")
    assert 0 < bound <= peak <= no_reuse
    assert f"peak/bound {peak / bound:.2f}" in done.stdout
    assert f"peak/no-reuse {peak / no_reuse:.2f}" in done.stdout
    # weight bytes: what weights.bin holds, both matrices and both biases at least
    weights = next(line for line in lines if line.startswith("weights: "))
    nbytes = int(weights.split()[1].replace(",", ""))
    assert nbytes == (tmp_path / "cpu" / "weights.bin").stat().st_size >= 4 * (16 * 32 + 32 + 32 * 10 + 10)
    assert weights.endswith(" in weights.bin")
