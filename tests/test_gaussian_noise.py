"""Additive Gaussian noise (Keras ``GaussianNoise``), docs/rng.md section 12.3.

The expected values are composed here from the section's rule, ``y = x + float32(stddev) * eps(g)``
with ``eps`` the normals of section 12.1 (the reference's Box-Muller, checked against the document
in test_rng_doc.py), never from ``gaussian_noise`` itself. Keras' own test
(keras/src/layers/regularization/gaussian_noise_test.py::test_gaussian_noise_correctness) checks
the standard deviation of the output of zeros; the statistics test below does the same.
"""
import numpy as np
import pytest

import dropkit
from dropkit.reference import _variants as ref


def _expected(x, stddev, seed, offset, pos=None):
    pos = np.arange(x.size, dtype=np.uint64) + np.uint64(offset) if pos is None else pos
    n = np.float32(stddev) * ref.normals_at(pos, seed)  # binary32, one rounding
    ct = np.float64 if x.dtype == np.float64 else np.float32
    return (x.reshape(-1).astype(ct) + n.astype(ct)).astype(x.dtype).reshape(x.shape)


@pytest.mark.parametrize("backend", ["core", "numpy"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_values_follow_the_rule(dtype, backend):
    x = (np.random.default_rng(0).standard_normal((7, 9)) * 4).astype(dtype)
    y = dropkit.gaussian_noise(x, 0.3, seed=12, offset=5, backend=backend)
    np.testing.assert_array_equal(y, _expected(x, 0.3, 12, 5))
    assert y.dtype == dtype


def test_float64_adds_the_binary32_noise_exactly():
    """The noise is binary32 for every dtype: a float64 output minus x is a binary32 number."""
    x = np.zeros(1000, np.float64)
    y = dropkit.gaussian_noise(x, 0.1, seed=1)
    np.testing.assert_array_equal(y, y.astype(np.float32).astype(np.float64))


def test_broadcast_noise_shares_positions():
    x = np.zeros((4, 3, 5), np.float32)
    y = dropkit.gaussian_noise(x, 1.0, seed=3, offset=2, noise_shape=(4, 1, 5))
    assert np.all(y == y[:, :1, :])
    pos = np.arange(20, dtype=np.uint64).reshape(4, 1, 5) + np.uint64(2)
    np.testing.assert_array_equal(y[:, 0, :], _expected(x[:, 0, :], 1.0, 3, 2, pos.reshape(-1)))


def test_same_normals_as_gaussian_dropout():
    """Section 12.3: the same eps(g) as Gaussian dropout's multiplier at the same (seed, g)."""
    ones = np.ones(64, np.float32)
    m = dropkit.gaussian_dropout(ones, 0.5, seed=4)  # sigma = 1: m = eps + 1
    n = dropkit.gaussian_noise(np.zeros(64, np.float32), 1.0, seed=4)  # n = eps
    np.testing.assert_array_equal(m, n + np.float32(1))


def test_statistics_mean_zero_and_the_standard_deviation():
    n = 1 << 18
    y = dropkit.gaussian_noise(np.zeros(n, np.float32), 0.25, seed=99).astype(np.float64)
    # 4-sigma bounds: the mean's sd is 0.25/sqrt(n); the sample variance's sd about var*sqrt(2/n)
    assert abs(y.mean()) < 4 * 0.25 / np.sqrt(n)
    assert abs(y.var() - 0.0625) < 4 * 0.0625 * np.sqrt(2 / n)


def test_evaluation_and_zero_stddev_return_x_itself():
    x = np.ones(8, np.float32)
    assert dropkit.gaussian_noise(x, 0.5, seed=1, training=False) is x
    assert dropkit.gaussian_noise(x, 0.0, seed=1) is x
    out = np.empty_like(x)
    assert dropkit.gaussian_noise(x, 0.0, seed=1, out=out) is out and np.all(out == 1)


def test_backward_is_the_identity_and_checks_its_arguments():
    g = np.arange(6, dtype=np.float32)
    assert dropkit.gaussian_noise_backward(g, 0.5, seed=1) is g
    with pytest.raises(ValueError, match="stddev"):
        dropkit.gaussian_noise_backward(g, -1.0, seed=1)
    with pytest.raises(ValueError, match="noise_shape"):
        dropkit.gaussian_noise_backward(g, 0.5, seed=1, noise_shape=(2,))


@pytest.mark.parametrize("stddev, exc", [(-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                         (1e39, ValueError), ("0.1", TypeError), (True, TypeError)])
def test_bad_stddev_is_named(stddev, exc):
    out = np.full(4, 7.0, np.float32)
    with pytest.raises(exc, match="stddev"):
        dropkit.gaussian_noise(np.ones(4, np.float32), stddev, seed=1, out=out)
    assert np.all(out == 7.0)
    with pytest.raises(exc, match="stddev"):
        dropkit.GaussianNoise(stddev)


def test_layer_advances_its_counter_and_regenerates_nothing_for_backward():
    layer = dropkit.GaussianNoise(0.2, 5)  # Keras' positional (stddev, seed)
    x = np.zeros((3, 4), np.float32)
    y1 = layer.forward(x)
    y2 = layer.forward(x)
    np.testing.assert_array_equal(y1, _expected(x, 0.2, 5, 0))
    np.testing.assert_array_equal(y2, _expected(x, 0.2, 5, 12))
    g = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(g), g)
    assert layer.forward(x, training=False) is x


def test_dask_form_matches_in_memory_for_any_chunking():
    da = pytest.importorskip("dask.array")
    import dropkit.dask as dkd

    x = (np.random.default_rng(1).standard_normal((9, 14))).astype(np.float32)
    expect = dropkit.gaussian_noise(x, 0.7, seed=6, offset=3, noise_shape=(9, 1))
    for chunks in [(9, 14), (4, 5), (1, 14), (3, 1)]:
        y = dkd.gaussian_noise(da.from_array(x, chunks=chunks), 0.7, seed=6, offset=3, noise_shape=(9, 1))
        np.testing.assert_array_equal(y.compute(), expect)
    d = da.from_array(x, chunks=4)
    assert dkd.gaussian_noise(d, 0.7, seed=6, training=False) is d
