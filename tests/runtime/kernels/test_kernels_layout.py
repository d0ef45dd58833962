"""transpose, gather, concat, slice and constant pad against numpy, exact, over several element
sizes (the kernels move bytes)."""
import itertools

import numpy as np
import pytest

rng = np.random.default_rng(4)
DTYPES = [np.float32, np.int8, np.float16, np.int64]


def arange(shape, dtype):
    return (np.arange(int(np.prod(shape))) % 251).astype(dtype).reshape(shape)


TRANSPOSES = [((5,), (0,)), ((3, 7), (1, 0)), ((1, 7), (1, 0)), ((2, 3, 4), (2, 0, 1)),
              ((2, 3, 4), (0, 2, 1)), ((4, 1, 3, 1), (3, 2, 1, 0)), ((8, 64, 12, 64), (0, 2, 1, 3)),
              ((2, 3, 4, 5, 6), (4, 2, 0, 3, 1)), ((2, 3, 2, 3, 2, 3), (5, 4, 3, 2, 1, 0)),
              ((97, 131), (1, 0)), ((33, 17, 19), (1, 2, 0))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,perm", TRANSPOSES)
def test_transpose_matches_numpy(K, shape, perm, dtype):
    x = arange(shape, dtype)
    for threads in (1, 2):
        got = K.transpose(x, list(perm), threads=threads)
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(got, np.transpose(x, perm))


@pytest.mark.parametrize("rank", [2, 3, 4])
def test_transpose_every_permutation(K, rank):
    shape = [2, 3, 5, 7][:rank]
    x = arange(shape, np.float32)
    for perm in itertools.permutations(range(rank)):
        np.testing.assert_array_equal(K.transpose(x, list(perm)), np.transpose(x, perm))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis,indices", [((5,), 0, [0, 4, -1, 2]), ((3, 4), 0, [[2, 0], [1, 1]]),
                                                 ((3, 4), 1, [3]), ((2, 7, 3), 1, [6, -7, 0, 3]),
                                                 ((1000, 64), 0, rng.integers(0, 1000, 257)),
                                                 ((2, 3, 5), -1, [])])
def test_gather_matches_numpy(K, shape, axis, indices, dtype):
    x = arange(shape, dtype)
    idx = np.asarray(indices, np.int64)
    for threads in (1, 2):
        np.testing.assert_array_equal(K.gather(x, idx, axis, threads=threads), np.take(x, idx, axis=axis))


def test_gather_rejects_out_of_range(K):
    with pytest.raises(IndexError):
        K.gather(np.zeros((3, 4), np.float32), np.array([3]), 0)
    with pytest.raises(IndexError):
        K.gather(np.zeros((3, 4), np.float32), np.array([-5]), 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes,axis", [([(3,), (4,)], 0), ([(2, 3), (2, 1), (2, 5)], 1),
                                         ([(1, 3), (4, 3)], 0), ([(2, 3, 4), (2, 3, 4)], -1),
                                         ([(2, 0, 4), (2, 3, 4)], 1), ([(64, 128, 7)] * 3, 1)])
def test_concat_matches_numpy(K, shapes, axis, dtype):
    xs = [arange(s, dtype) + i for i, s in enumerate(shapes)]
    for threads in (1, 2):
        np.testing.assert_array_equal(K.concat(xs, axis, threads=threads), np.concatenate(xs, axis))


SLICES = [((10,), (slice(1, 8, 2),)), ((10,), (slice(9, None, -3),)), ((5, 6), (slice(1, 4), slice(None, None, -1))),
          ((4, 5, 6), (slice(None), slice(4, 0, -2), slice(1, 6, 2))), ((7, 1, 9), (slice(6, 1, -1), slice(None), slice(2, 3))),
          ((3, 4, 5, 6, 2, 3), (slice(0, 3, 2), slice(None), slice(1, 4), slice(5, None, -2), slice(None), slice(1, None))),
          ((6, 6), (slice(3, 3), slice(None))), ((257, 129), (slice(1, None, 3), slice(2, 127)))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,slices", SLICES)
def test_slice_with_steps_matches_numpy(K, shape, slices, dtype):
    x = arange(shape, dtype)
    want = x[slices]
    starts, steps = [], []
    for s, n in zip(slices, shape):
        start, _, step = s.indices(n)
        starts.append(start)
        steps.append(step)
    for threads in (1, 2):
        np.testing.assert_array_equal(K.slice(x, starts, steps, list(want.shape), threads=threads), want)


PADS = [((5,), (2,), (3,)), ((3, 4), (1, 0), (0, 2)), ((2, 3, 4), (0, 1, 2), (1, 0, 3)),
        ((1, 1, 1, 1), (1, 1, 1, 1), (1, 1, 1, 1)), ((4, 6), (-1, 2), (1, -3)), ((3, 5), (0, -2), (0, -3)),
        ((2, 3, 4, 2, 3, 2), (1, 0, 1, 0, 1, 0), (0, 1, 0, 1, 0, 1)), ((64, 56, 56), (0, 1, 1), (0, 1, 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,begin,end", PADS)
def test_pad_constant_matches_numpy(K, shape, begin, end, dtype):
    x = arange(shape, dtype)
    # numpy has no negative pads: crop first, then pad the rest.
    crop = tuple(slice(max(0, -b), n - max(0, -e)) for n, b, e in zip(shape, begin, end))
    want = np.pad(x[crop], [(max(0, b), max(0, e)) for b, e in zip(begin, end)], constant_values=7)
    for threads in (1, 2):
        np.testing.assert_array_equal(K.pad(x, list(begin), list(end), 7, threads=threads), want)


def pad_reference(x, begin, end, mode, value=7):
    """ONNX Pad in numpy. Constant: pad by the positive pads, then crop by the negative ones (the
    same as cropping first, and defined when a crop reaches past the pad on the other side). The
    other modes crop first and pad from what is left, as onnxruntime and flowc.ir.run do."""
    if mode == "constant":
        padded = np.pad(x, [(max(0, b), max(0, e)) for b, e in zip(begin, end)], constant_values=value)
        return padded[tuple(slice(max(0, -b), n - max(0, -e)) for n, b, e in zip(padded.shape, begin, end))]
    crop = tuple(slice(max(0, -b), n - max(0, -e)) for n, b, e in zip(x.shape, begin, end))
    return np.pad(x[crop], [(max(0, b), max(0, e)) for b, e in zip(begin, end)], mode=mode)


# Mixed signs on every axis; a pad wider than what the crop keeps repeats (reflect, wrap).
PADS_MIXED = [((6,), (-2,), (3,)), ((6,), (4,), (-3,)), ((5, 7), (-1, 3), (2, -4)),
              ((5, 4), (9, -2), (-3, 6)), ((4, 5, 6), (2, -3, 1), (-1, 4, -2)),
              ((3, 4, 5, 6), (-2, 1, 5, -3), (1, -2, -1, 7)),
              ((2, 3, 4, 2, 3, 5), (1, -1, 2, 0, -2, 3), (-1, 2, -3, 1, 1, -4)), ((33, 17), (-5, 16), (7, -16))]
# A crop reaching past the pad on the other side: no column (or no element) of x is left.
PADS_PAST_THE_PAD = [((3, 2), (0, 5), (0, -4)), ((3, 2), (0, -4), (0, 5)), ((2, 3, 2), (0, 0, 9), (0, 0, -10)),
                     ((4, 2, 3), (5, -1, 2), (-6, 3, -1)), ((2, 5), (-7, 1), (8, -1)),
                     ((1, 1), (3, 3), (-4, -3))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("shape,begin,end", PADS_MIXED)
def test_pad_mixed_signs_every_mode_matches_numpy(K, shape, begin, end, mode, dtype):
    x = arange(shape, dtype)
    want = pad_reference(x, begin, end, mode)
    for threads in (1, 2):
        np.testing.assert_array_equal(K.pad(x, list(begin), list(end), 7, mode=mode, threads=threads), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,begin,end", PADS_PAST_THE_PAD)
def test_pad_constant_crop_past_the_other_pad(K, shape, begin, end, dtype):
    x = arange(shape, dtype)
    want = pad_reference(x, begin, end, "constant")
    for threads in (1, 2):
        np.testing.assert_array_equal(K.pad(x, list(begin), list(end), 7, threads=threads), want)


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
@pytest.mark.parametrize("shape,begin,end", PADS_PAST_THE_PAD[:2] + [((3, 4), (0, -4), (0, 1))])
def test_pad_refuses_to_pad_an_axis_cropped_to_nothing(K, shape, begin, end, mode):
    with pytest.raises(ValueError, match="cannot pad an axis cropped to nothing"):
        K.pad(arange(shape, np.float32), list(begin), list(end), mode=mode)


def test_pad_refuses_a_crop_below_size_zero(K):
    for mode in ("constant", "edge"):
        with pytest.raises(ValueError):
            K.pad(arange((3, 4), np.float32), [-2, -3], [0, -2], mode=mode)
