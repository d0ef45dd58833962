"""ir/sbp.py: SBP text (parse and format, 1-D and 2-D, exact errors), local shapes, and the pieces
each rank holds (local_piece) against the whole they assemble back to."""
import itertools

import numpy as np
import pytest

import flowc
from flowc.ir.sbp import (B, P, S, Signature, assemble, format_sbp, local_piece, local_shape, mesh_coords, parse_sbp,
                          split_count)

from plan_check import random_partial_pieces

ONE = [S(0), S(1), S(2), B, P]


@pytest.mark.parametrize("text,mesh_rank,want", [
    ("S(0)", None, (S(0),)),
    ("B", None, (B,)),
    ("P", 1, (P,)),
    (" S ( 2 ) ", None, (S(2),)),
    ("S(-1)", None, (S(-1),)),
    ("(S(0), B)", None, (S(0), B)),
    ("S(0),B", 2, (S(0), B)),
    ("[S(1), P]", 2, (S(1), P)),
    ("(P,S(0))", None, (P, S(0))),
    ("S(1)", 2, (S(1), S(1))),          # one SBP for every mesh axis
    ("B", 3, (B, B, B)),
])
def test_parse(text, mesh_rank, want):
    assert parse_sbp(text, mesh_rank) == want


@pytest.mark.parametrize("nd", [(s,) for s in ONE] + list(itertools.product(ONE, repeat=2)))
def test_format_parses_back(nd):
    text = format_sbp(nd)
    assert parse_sbp(text) == nd
    assert format_sbp(parse_sbp(text, len(nd))) == text


def test_format():
    assert format_sbp((S(0),)) == "S(0)"
    assert format_sbp((S(0), P)) == "(S(0), P)"
    assert str(Signature((S(1), None, B), (P,))) == "S(1), -, B -> P"


@pytest.mark.parametrize("text,mesh_rank,message", [
    ("Q", None, "SBP 'Q': 'Q' is not S(axis), B or P"),
    ("S(x)", None, "SBP 'S(x)': 'S(x)' is not S(axis), B or P"),
    ("(S(0), Split(1))", None, "SBP '(S(0), Split(1))': 'Split(1)' is not S(axis), B or P"),
    ("S(0),,B", None, "SBP 'S(0),,B': '' is not S(axis), B or P"),
    ("", None, "SBP '' is empty; write S(axis), B or P per mesh axis"),
    ("()", None, "SBP '()' is empty; write S(axis), B or P per mesh axis"),
    ("(S(0), B, P)", 2, "SBP '(S(0), B, P)' has 3 parts for a mesh of 2 axes"),
])
def test_parse_errors(text, mesh_rank, message):
    with pytest.raises(flowc.CompileError) as e:
        parse_sbp(text, mesh_rank)
    assert str(e.value) == message


def test_local_shape():
    assert local_shape((8, 6), (S(0),), (4,)) == (2, 6)
    assert local_shape((8, 6), (S(0), S(0)), (2, 2)) == (2, 6)
    assert local_shape((8, 6), (S(1), S(0)), (3, 2)) == (4, 2)
    assert local_shape((8, 6), (P, B), (2, 2)) == (8, 6)
    assert local_shape((8, 6), (S(1),), (4,)) is None            # 6 does not split in 4
    assert local_shape((8, 6), (S(0), S(0)), (2, 8)) is None     # 8 / 2 does not split in 8
    assert local_shape((8, 6), (S(2),), (2,)) is None            # no such axis
    assert split_count((S(0), S(0)), 0, (2, 3)) == 6
    assert split_count((S(1), P), 0, (2, 3)) == 1


def test_pieces_follow_mesh_axis_order():
    """(S(0), S(0)) on 2x2 cuts axis 0 in two, then each half in two: rank (1, 0) holds the third quarter."""
    x = np.arange(8 * 3).reshape(8, 3)
    assert (local_piece(x, (S(0), S(0)), (2, 2), (1, 0)) == x[4:6]).all()
    assert (local_piece(x, (S(0), S(1)), (2, 3), (1, 2)) == x[4:8, 2:3]).all()
    assert (local_piece(x, (P, S(0)), (2, 2), (1, 1)) == 0).all()
    assert (local_piece(x, (P, S(0)), (2, 2), (0, 1)) == x[4:8]).all()
    assert mesh_coords((2, 3)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert local_piece(np.float32(2.5), (P,), (2,), (1,)).shape == ()


MESHES = [(2,), (3,), (4,), (2, 2), (2, 3), (3, 2)]


def layouts(rank: int, mesh_rank: int):
    one = [S(k) for k in range(rank)] + [B, P]
    return list(itertools.product(one, repeat=mesh_rank))


@pytest.mark.parametrize("mesh", MESHES, ids=lambda m: "x".join(map(str, m)))
@pytest.mark.parametrize("shape", [(12, 6), (6, 4, 12), (12,)])
def test_assemble_inverts_local_piece(mesh, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    checked = 0
    for nd in layouts(len(shape), len(mesh)):
        local = local_shape(shape, nd, mesh)
        if local is None:
            continue
        pieces = {c: local_piece(x, nd, mesh, c) for c in mesh_coords(mesh)}
        assert all(p.shape == local for p in pieces.values()), nd
        np.testing.assert_array_equal(assemble(pieces, nd, mesh), x, err_msg=str(nd))
        # any shares of the partial sums assemble back, not only "the first member keeps it"
        shared = dict(zip(mesh_coords(mesh), random_partial_pieces(x, nd, mesh, seed=checked)))
        np.testing.assert_allclose(assemble(shared, nd, mesh), x, rtol=1e-5, atol=1e-5, err_msg=str(nd))
        checked += 1
    assert checked >= 3   # B, P and a split at least
