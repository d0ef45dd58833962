"""The exceptions flowc raises to its users."""


class FlowcError(Exception):
    """Base of every error flowc raises on purpose."""


class CompileError(FlowcError):
    """A model cannot be imported, verified, optimised or compiled.

    The message names the op type, node and tensor concerned, and what the
    user can do about it.
    """


class InputError(FlowcError, ValueError):
    """Inputs given to `Model.run` do not match what the model expects."""


def describe_node(node) -> str:
    """`Conv node "/conv1/Conv"`, or by its first output when it has no name."""
    return node_label(node.op, node.name, node.outputs[0].name if node.outputs else None)


def node_label(op: str, name: str, first_output: str | None = None) -> str:
    """How every error names a node, from its parts (for nodes not built yet, or ONNX's)."""
    if name:
        return f"{op} node {quote_name(name)}"
    if first_output:
        return f"{op} node producing {quote_name(first_output)}"
    return f"{op} node"


def quote_name(text: str) -> str:
    """A name in double quotes, on one line whatever it holds."""
    # repr keeps newlines and quotes from hostile names visible on one line
    return '"' + repr(str(text))[1:-1].replace('"', '\\"') + '"'
