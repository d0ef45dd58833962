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
    if node.name:
        return f"{node.op} node {quote_name(node.name)}"
    if node.outputs:
        return f"{node.op} node producing {quote_name(node.outputs[0].name)}"
    return f"{node.op} node"


def quote_name(text: str) -> str:
    """A name in double quotes, on one line whatever it holds."""
    # repr keeps newlines and quotes from hostile names visible on one line
    return '"' + repr(str(text))[1:-1].replace('"', '\\"') + '"'
