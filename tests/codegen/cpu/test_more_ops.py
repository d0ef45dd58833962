"""The CNN and transformer ops target cpu runs through decomposition (ir/passes/decompose.py) or the
reduce, group-norm and gather-elements kernels, against the numpy reference (`flowc.ir.run`) at
odd, prime and unit shapes and every attribute variant.

A C++ build costs a second or two, so each test builds one graph holding many cases, each case
its own output (named for the case, which failures print)."""
from __future__ import annotations

import numpy as np

import flowc
from cases import Cases, ints, refusal
from flowc.frontend.builder import GraphBuilder


REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")


def test_reductions(tmp_path, toolchain):
    c = Cases("reduce")
    x = c.input([3, 7, 13, 5])
    pos = c.positive([3, 7, 13, 5])      # ReduceLogSum takes the log of a sum: keep it positive
    axes_cases = {"last": ints(-1), "trailing": ints(2, 3), "middle": ints(1, 2), "first": ints(0),
                  "apart": ints(0, 2), "apart3": ints(3, 1, 0)}
    for op in REDUCE_OPS:
        src = pos if op == "ReduceLogSum" else x
        for label, axes in axes_cases.items():
            for keep in (0, 1):
                c[f"{op}_{label}_{keep}"] = c.op(op, src, axes, keepdims=keep)
        c[f"{op}_all"] = c.op(op, src, keepdims=0)
        c[f"{op}_noop"] = c.op(op, src, ints(), noop_with_empty_axes=1)
        c[f"{op}_unit"] = c.op(op, c.positive([1, 1, 1]), ints(1))
        c[f"{op}_wide_middle"] = c.op(op, c.positive([2, 3, 300]) if op == "ReduceLogSum" else c.input([2, 3, 300]),
                                      ints(1), keepdims=0)      # columns past one block of the kernel
    # log-sum-exp shifts by the largest finite element: infinities and large values stay exact
    special = c.input([2, 5, 3], data=np.array([[[80, -np.inf, 1], [90, -np.inf, 2], [85, -np.inf, 3],
                                                 [0, -np.inf, np.inf], [1, -np.inf, 4]]] * 2))
    for axes in (ints(1), ints(2)):
        c[f"log_sum_exp_special_{axes[0]}"] = c.op("ReduceLogSumExp", special, axes)
    c["max_ties_with_inf"] = c.op("ReduceMax", special, ints(1), keepdims=0)
    y = c.input([2, 6, 7, 11])
    c["global_max_pool"] = c.op("GlobalMaxPool", y)
    c["global_max_pool_1d"] = c.op("GlobalMaxPool", c.input([2, 3, 13]))
    for p in (1, 2):
        for axis in (1, -1):
            c[f"lp_norm_{p}_{axis}"] = c.op("LpNormalization", y, axis=axis, p=p)
    c["lp_norm_zero_vector"] = c.op("LpNormalization", c.input([3, 4], data=np.eye(3, 4) * [[0], [2], [0]]), axis=1)
    c.check(tmp_path)


def test_arg_top_k_cumsum(tmp_path, toolchain):
    c = Cases("indices")
    x = c.input([3, 7, 13, 5])
    t = c.ties([3, 7, 13, 5])
    for op in ("ArgMax", "ArgMin"):
        for axis in (0, 1, 2, -1):
            for keep in (0, 1):
                for last in (0, 1):
                    c[f"{op}_{axis}_{keep}_{last}"] = c.op(op, x, axis=axis, keepdims=keep, select_last_index=last)
                    c[f"{op}_ties_{axis}_{keep}_{last}"] = c.op(op, t, axis=axis, keepdims=keep,
                                                                 select_last_index=last)
        c[f"{op}_unit"] = c.op(op, c.input([1, 1]), axis=1)
        c[f"{op}_wide"] = c.op(op, c.ties([2, 3, 300]), axis=1, select_last_index=1)
    for axis in (0, 1, -1):
        c[f"hardmax_{axis}"] = c.op("Hardmax", t, axis=axis)
    for largest in (0, 1):
        for axis in (1, -1):
            for k in (1, 4, 5 if axis == -1 else 7):
                c[f"topk_{largest}_{axis}_{k}"], c[f"topk_{largest}_{axis}_{k}_i"] = c.op(
                    "TopK", t, ints(k), outputs=2, axis=axis, largest=largest)
        c[f"topk_distinct_{largest}"], c[f"topk_distinct_{largest}_i"] = c.op(
            "TopK", x, ints(3), outputs=2, axis=2, largest=largest, sorted=1)
    c["topk_zero"], c["topk_zero_i"] = c.op("TopK", x, ints(0), outputs=2)
    c["topk_unit"], c["topk_unit_i"] = c.op("TopK", c.input([1]), ints(1), outputs=2)
    for dtype in ("f32", "i64", "i32", "f64"):
        v = c.input([3, 7, 5], dtype, low=-9, high=10)
        for axis in (0, 1, -1):
            for exclusive in (0, 1):
                for reverse in (0, 1):
                    c[f"cumsum_{dtype}_{axis}_{exclusive}_{reverse}"] = c.op(
                        "CumSum", v, ints(axis), exclusive=exclusive, reverse=reverse)
    c["cumsum_i32_axis"] = c.op("CumSum", c.input([13]), np.array([0], np.int32))
    c["cumsum_wide"] = c.op("CumSum", c.input([2, 3, 300]), ints(1), reverse=1)
    c.check(tmp_path)


def test_normalization(tmp_path, toolchain):
    c = Cases("norm")
    x = c.input([2, 6, 7, 11])
    bn = [c.weight([6]), c.weight([6]), c.weight([6]), c.b.const(np.abs(c.rng.standard_normal(6)).astype(np.float32))]
    c["batch_norm"] = c.op("BatchNormalization", x, *bn)
    c["batch_norm_eps"] = c.op("BatchNormalization", x, *bn, epsilon=0.1)
    c["batch_norm_relu"] = c.op("Relu", c.op("BatchNormalization", x, *bn))     # pre-activation: fuses
    c["batch_norm_1d"] = c.op("BatchNormalization", c.input([5, 6]), *bn)      # BatchNorm1d after Linear
    c["batch_norm_3d"] = c.op("BatchNormalization", c.input([3, 6, 13]), *bn)
    c["batch_norm_unit"] = c.op("BatchNormalization", c.input([1, 1, 1, 1]), *(c.weight([1]) for _ in range(3)),
                                c.b.const(np.ones(1, np.float32)))
    far = c.input([2, 6, 7, 11], data=c.rng.standard_normal([2, 6, 7, 11]) + 10)   # mean far from 0
    for name, v in (("", x), ("_far", far)):
        c[f"instance_norm{name}"] = c.op("InstanceNormalization", v, c.weight([6]), c.weight([6]))
        for groups in (1, 2, 3, 6):
            c[f"group_norm_{groups}{name}"] = c.op("GroupNormalization", v, c.weight([6]), c.weight([6]),
                                                   num_groups=groups, epsilon=1e-3)
    c["instance_norm_1d"] = c.op("InstanceNormalization", c.input([3, 5, 13]), c.weight([5]), c.weight([5]),
                                 epsilon=0.01)
    c["group_norm_unit"] = c.op("GroupNormalization", c.input([1, 1, 1]), c.weight([1]), c.weight([1]), num_groups=1)
    for size in (1, 2, 3, 5, 7):     # even sizes reach one channel further back than forward
        c[f"lrn_{size}"] = c.op("LRN", x, size=size, alpha=0.1, beta=0.75, bias=1.0)
    c["lrn_2d"] = c.op("LRN", c.input([3, 13]), size=4, alpha=0.5, beta=0.5, bias=2.0)
    c["lrn_defaults"] = c.op("LRN", c.input([1, 3, 5, 1]), size=3)
    c.check(tmp_path)


def test_layout(tmp_path, toolchain):
    c = Cases("layout")
    x = c.input([2, 12, 3, 5])
    for mode in ("DCR", "CRD"):
        for b in (1, 2):
            c[f"depth_to_space_{mode}_{b}"] = c.op("DepthToSpace", x, blocksize=b, mode=mode)
        c[f"space_to_depth_{mode}"] = c.op("SpaceToDepth", c.input([2, 3, 6, 4]), blocksize=2, mode=mode)
        c[f"space_to_depth_3_{mode}"] = c.op("SpaceToDepth", c.input([1, 2, 9, 3]), blocksize=3, mode=mode)
    c["tile"] = c.op("Tile", c.input([3, 1, 2]), ints(2, 3, 1))
    c["tile_i64"] = c.op("Tile", c.input([2, 5], "i64"), ints(3, 2))
    c["tile_ones"] = c.op("Tile", c.input([7]), ints(1))
    c["tile_zero"] = c.op("Tile", c.input([2, 3]), ints(0, 2))
    y = c.input([3, 7, 5])
    for axis in (0, 1, -1):
        shape = [3, 7, 5]
        shape[axis] = 4
        idx = c.rng.integers(-3, 3, size=shape)
        c[f"gather_elements_{axis}"] = c.op("GatherElements", y, idx.astype(np.int64), axis=axis)
        c[f"gather_elements_{axis}_i32"] = c.op("GatherElements", y, idx.astype(np.int32), axis=axis)
    c["gather_elements_smaller"] = c.op("GatherElements", y, c.input([2, 3, 4], "i64", low=-5, high=5), axis=2)
    c["gather_elements_u8"] = c.op("GatherElements", c.input([4, 6], "u8", low=0, high=255),
                                   ints(3, 0, 1, 2, -1, -4).reshape(1, 6), axis=0)
    c["gather_elements_1d"] = c.op("GatherElements", c.input([13]), ints(12, 0, -13, 5))
    m = c.input([2, 5, 7])
    for upper in (0, 1):
        c[f"trilu_{upper}"] = c.op("Trilu", m, upper=upper)
        for k in (-2, 1, 9, -9):
            c[f"trilu_{upper}_{k}"] = c.op("Trilu", m, np.array(k, np.int64), upper=upper)
    c["trilu_i64"] = c.op("Trilu", c.input([4, 3], "i64"), np.array(-1, np.int64), upper=0)
    c["cast_like"] = c.op("CastLike", c.input([3, 5]) * 10.0, np.zeros(1, np.int32))
    c["cast_like_same"] = c.op("CastLike", c.input([3, 5]), np.zeros(1, np.float32))
    c.check(tmp_path)


def _special_rows(rng, n):
    """Rows of n logits: a NaN, a +inf, +inf among -inf, one finite value among -inf, first or last
    (past the kernel's blocks of 16 lanes where n > 16); all -inf; all NaN; large finite logits
    whose plain sum overflows before it meets -inf; and an ordinary row."""
    rows = []
    for at in sorted({0, n - 1}):
        for special in (np.nan, np.inf):
            row = rng.standard_normal(n)
            row[at] = special
            rows.append(row)
        for value in (np.inf, 0.5):
            row = np.full(n, -np.inf)
            row[at] = value
            rows.append(row)
    big = np.full(n, 3e38)
    big[n // 2:] = -np.inf
    rows += [np.full(n, -np.inf), np.full(n, np.nan), big, rng.standard_normal(n)]
    return np.stack(rows)


def test_softmax_special_rows(tmp_path, toolchain):
    """As numpy: a row holding a NaN, all -inf, or a +inf (exp(inf - inf) is NaN) is NaN throughout;
    over the last axis (the row kernel), a middle one (the strided kernel) and in attention."""
    c = Cases("softmax_special")
    for n in (1, 15, 16, 17, 33):
        rows = _special_rows(c.rng, n)
        x = c.input(rows.shape, data=rows)
        xt = c.input(rows.T.shape, data=rows.T)    # the same rows as columns
        for op in ("Softmax", "LogSoftmax"):
            c[f"{op}_{n}"] = c.op(op, x, axis=-1)
            c[f"{op}_{n}_strided"] = c.op(op, c.op("Unsqueeze", xt, ints(0)), axis=1)
    # fused attention: query rows whose masked scores are all -inf, hold a NaN, or are ordinary
    for n in (1, 17):
        q, kt, v = c.input([2, 3, 5]), c.input([2, 5, n]), c.input([2, n, 4])
        mask = np.zeros((3, n))
        mask[0], mask[1, -1] = -np.inf, np.nan
        scores = c.op("Add", c.op("Mul", c.op("MatMul", q, kt), np.array(0.5, np.float32)), c.input([3, n], data=mask))
        c[f"attention_{n}"] = c.op("MatMul", c.op("Softmax", scores, axis=-1), v)
    c.check(tmp_path)
    assert next(tmp_path.glob("model.c*")).read_text().count("// FusedAttention") == 2   # model.cpp or model.cu


PAD_MODES = ("constant", "reflect", "edge", "wrap")


def test_pad_mixed_signs(tmp_path, toolchain):
    """Pad and crop on the same axis and on every axis, in each mode: negative pads crop first, the
    positive ones pad from what is left, wider than it where they repeat (reflect, wrap)."""
    c = Cases("pad_mixed")
    x = c.input([4, 5, 6, 7])
    widths = {"begin_crop": ints(-1, 2, -3, 4, 3, -2, 1, -5), "end_crop": ints(2, -1, 3, -4, -3, 2, -1, 5),
              "wide": ints(-2, 9, 1, -3, 7, -2, -4, 12), "last_only": ints(5, -6)}
    for mode in PAD_MODES:
        for label, pads in widths.items():
            axes = ints(-1) if label == "last_only" else None
            c[f"{mode}_{label}"] = c.op("Pad", x, pads, None, axes, mode=mode)
        c[f"{mode}_rank1"] = c.op("Pad", c.input([9]), ints(-4, 6), mode=mode)
        c[f"{mode}_i64"] = c.op("Pad", c.input([3, 8], "i64"), ints(2, -7, -1, 9), mode=mode)
    c.check(tmp_path)


def test_pad_crop_past_the_other_pad(tmp_path, toolchain):
    """A constant Pad whose crop on one side reaches past the pad on the other (width 2, pads 5 and
    -4: no column of x is left): numpy pads first and crops after, and so do flowc.ir.run and the kernel."""
    cases = {"last_axis": ([3, 2], [0, 5], [0, -4]), "last_axis_end": ([3, 2], [0, -4], [0, 5]),
             "middle_axis": ([2, 3, 4], [0, 7, 1], [0, -9, -1]), "every_axis": ([2, 3, 2], [3, -5, 9], [-4, 6, -10])}
    b = GraphBuilder("pad_past")
    rng = np.random.default_rng(0)
    feeds, want = {}, {}
    for name, (shape, begin, end) in cases.items():
        feeds[f"x_{name}"] = rng.standard_normal(shape).astype(np.float32)
        x = b.input(f"x_{name}", "f32", shape)
        b.output(b.op("Pad", x, ints(*begin, *end), np.array([7], np.float32)), name=name)
        padded = np.pad(feeds[f"x_{name}"], [(max(0, p), max(0, q)) for p, q in zip(begin, end)], constant_values=7)
        want[name] = padded[tuple(slice(max(0, -p), n - max(0, -q)) for n, p, q in zip(padded.shape, begin, end))]
    graph = b.build()
    got = flowc.load(flowc.compile(graph, target="cpu", out_dir=tmp_path).path).run(feeds)
    reference = flowc.ir.run(graph, feeds)
    for name, w in want.items():
        assert got[name].shape == w.shape and np.all(w == 7), name
        np.testing.assert_array_equal(got[name], w, err_msg=name)
        np.testing.assert_array_equal(reference[name], w, err_msg=name)


# -- what target cpu refuses ------------------------------------------------------------


def test_refusals_name_the_case(tmp_path):
    def runtime_axis(b):
        return b.op("CumSum", b.input("x", "f32", [3, 4]), b.input("axis", "i64", []), name="cs")
    assert refusal(runtime_axis, tmp_path) == ('op CumSum (node "cs") is not supported by target cpu yet: its axis '
                                               'must be known at compile time')

    def cumsum_u8(b):
        return b.op("CumSum", b.input("x", "u8", [3, 4]), ints(0), name="cs")
    assert refusal(cumsum_u8, tmp_path) == ('op CumSum (node "cs") is not supported by target cpu yet: u8[3,4] '
                                            '(target cpu sums f32, f64, i32 and i64)')

    def group_norm_f64_stash(b):
        x = b.input("x", "f32", [1, 4, 3])
        return b.op("GroupNormalization", x, np.ones(4, np.float32), np.zeros(4, np.float32), num_groups=2,
                    stash_type=11, name="gn")
    assert refusal(group_norm_f64_stash, tmp_path) == ('op GroupNormalization (node "gn") is not supported by target '
                                                       'cpu yet: stash_type 11 (target cpu normalises in f32: 1)')
