"""The C++ header a target's schedule module renders for its kernel library.

A schedule module (cpu.py, cuda.py) binds each kernel family's table, a frozen dataclass of
ints, to an upper-case name. Each table becomes a namespace of `constexpr int`s named after its
fields (ROWS.block_threads: `rows::kBlockThreads`), under the class docstring as a comment, in
the order the module defines them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType

INT_MAX = 2 ** 31 - 1     # the header declares every value an int


def tables(module: ModuleType) -> dict[str, object]:
    """The module's tables by namespace name (ELEMENTWISE: "elementwise"), in definition order."""
    return {name.lower(): value for name, value in vars(module).items()
            if name.isupper() and dataclasses.is_dataclass(value) and not isinstance(value, type)}


def constant_name(field: str) -> str:
    """C++ name of a table field: max_blocks gives kMaxBlocks."""
    return "k" + "".join(part.capitalize() for part in field.split("_"))


def render(module: ModuleType, source: str, namespace: str, summary: str) -> str:
    """The header text for `module` (its source file `source`, e.g. "schedules/cuda.py"), its
    constants in C++ namespace `namespace`, `summary` its second line."""
    command = f"python -m flowc.{source.removesuffix('.py').replace('/', '.')}"
    lines = [f"// Generated from {source} by `{command}`; do not edit.",
             f"// {summary}",
             "#pragma once", "", f"namespace {namespace} {{"]
    for name, table in tables(module).items():
        lines.append("")
        lines += [f"// {line}".rstrip() for line in _docstring(type(table))]
        lines.append(f"namespace {name} {{")
        for field in dataclasses.fields(table):
            value = getattr(table, field.name)
            if not isinstance(value, int) or not 0 <= value <= INT_MAX:
                raise ValueError(f"{type(table).__name__}.{field.name} = {value!r}: the header declares an int; "
                                 f"use an integer in [0, {INT_MAX}]")
            lines.append(f"constexpr int {constant_name(field.name)} = {_literal(value)};")
        lines.append(f"}}  // namespace {name}")
    lines += ["", f"}}  // namespace {namespace}", ""]
    return "\n".join(lines)


def _literal(value: int) -> str:
    """Large powers of two and whole MiB as shifts, as the tables write them: 1 << 16, 64 << 20."""
    if value >= 1 << 20 and value % (1 << 20) == 0:
        return f"{value >> 20} << 20"
    if value > 1024 and value & (value - 1) == 0:
        return f"1 << {value.bit_length() - 1}"
    return str(value)


def _docstring(cls: type) -> list[str]:
    lines = (cls.__doc__ or "").strip().splitlines()
    return [line.strip() for line in lines]


def write(header: Path, text: str) -> None:
    """`python -m flowc.schedules.<target>`: the target's header rewritten from its tables."""
    header.write_text(text)
    print(f"wrote {header}")
