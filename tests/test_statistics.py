"""Statistics of the masks, with fixed seeds and 5-sigma bounds.

Every bound is a standard deviation computed from the Bernoulli moments of the exact keep
probability ``q = (2**32 - t) / 2**32`` (docs/rng.md section 4), times 5. The seeds are fixed, so
the tests are deterministic; a correct stream passes each with probability > 1 - 6e-7 anyway.
They run on the core only: tests/test_parity.py shows the reference gives the same bits.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dropkit
from _helpers import TWO32

Z = 5.0  # sigmas


def keep_prob(rate: float) -> float:
    return (TWO32 - round(rate * TWO32)) / TWO32


def mask(n: int, rate: float, seed: int, offset: int = 0) -> np.ndarray:
    return dropkit.dropout_mask(n, rate, seed=seed, offset=offset, backend="core")


def assert_fraction(k: int, n: int, q: float, what: str) -> None:
    sigma = math.sqrt(q * (1 - q) / n)
    dev = (k / n - q) / sigma
    assert abs(dev) <= Z, f"{what}: kept {k}/{n} = {k / n:.6f}, expected {q:.6f} ({dev:+.1f} sigma)"


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float((a @ b) / math.sqrt((a @ a) * (b @ b)))


# ------------------------------------------------------------------------------------------
# Keep fraction
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 2**63 + 12345], ids=["o=0", "o=2**63+12345"])
@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5, 0.9, 1 / 3, 2.0**-10, 1 - 2.0**-10])
def test_keep_fraction(rate, offset):
    n = 2**21 + 17
    m = mask(n, rate, seed=20240601, offset=offset)
    assert_fraction(int(m.sum()), n, keep_prob(rate), f"rate={rate}")


def test_keep_probability_is_close_to_one_minus_rate():
    """docs/rng.md section 4: within 2**-33 of 1 - rate (so the bounds above are about 1 - rate)."""
    for rate in [0.01, 0.1, 1 / 3, 0.5, 0.9, 2.0**-33, 1 - 2.0**-33, 1e-12]:
        assert abs(keep_prob(rate) - (1 - rate)) <= 2.0**-33


@pytest.mark.parametrize("modulus", [32, 128])
@pytest.mark.parametrize("rate", [0.5, 0.1, 1 / 3, 2.0**-8, 1 - 2.0**-8])
def test_keep_fraction_per_lane(rate, modulus):
    """Per bucket g mod 32 (a bit of a word) and g mod 128 (a lane of a block): a stuck or
    biased bit in any word, at any plane that matters for this rate, moves one bucket."""
    n = 2**22
    offset = 1000 * 128  # so that bucket j holds the positions g with g mod 128 == j
    m = mask(n, rate, seed=777, offset=offset)
    counts = m.reshape(-1, modulus).sum(axis=0)
    q = keep_prob(rate)
    per = n // modulus
    sigma = math.sqrt(q * (1 - q) / per)
    devs = (counts / per - q) / sigma
    worst = int(np.argmax(np.abs(devs)))
    assert np.all(np.abs(devs) <= Z), f"lane {worst} (mod {modulus}): {devs[worst]:+.1f} sigma"


# ------------------------------------------------------------------------------------------
# Moments of inverted and classic dropout
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_inverted_mean_and_variance(rate):
    """y = x * s * B with B ~ Bernoulli(q), s = 1/(1-rate): E[y] = x, Var[y] = x^2 rate/(1-rate).

    The bounds are 5 standard deviations of the sample mean and of the sample variance:
    Var(mean) = sigma^2 / n, Var(S^2) = mu4 / n - sigma^4 (n - 3) / (n (n - 1)) (exact; its
    leading term vanishes at q = 1/2, where (B - q)^2 is constant), with the central moments of
    a (B - q): sigma^2 = a^2 q(1-q), mu4 = a^4 q(1-q) ((1-q)^3 + q^3)."""
    n, x0 = 2**21, 3.0
    x = np.full(n, x0, dtype=np.float32)
    y = dropkit.dropout(x, rate, seed=31415926, offset=5, backend="core").astype(np.float64)
    q = 1 - rate
    a = x0 / q
    var = a * a * q * (1 - q)
    assert math.isclose(var, x0 * x0 * rate / (1 - rate), rel_tol=1e-12)
    mu4 = a**4 * q * (1 - q) * ((1 - q) ** 3 + q**3)

    mean = y.mean()
    sd_mean = math.sqrt(var / n)
    assert abs(mean - x0) <= Z * sd_mean, f"E[y] = {mean}, want {x0} +- {Z * sd_mean:.2e}"

    s2 = y.var(ddof=1)
    sd_s2 = math.sqrt(mu4 / n - var * var * (n - 3) / (n * (n - 1)))
    want = x0 * x0 * rate / (1 - rate)
    assert abs(s2 - want) <= Z * sd_s2, f"Var[y] = {s2}, want {want} +- {Z * sd_s2:.2e}"

    # Only two values: 0 and x * float32(1/(1-rate)).
    vals = np.unique(y)
    assert vals[0] == 0.0 and vals[-1] == float(np.float32(x0) * np.float32(1 / (1 - rate)))


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_classic_training_and_evaluation_means_agree(rate):
    """Classic dropout: E[y_train] = (1 - rate) x = y_eval."""
    n, x0 = 2**21, 3.0
    x = np.full(n, x0, dtype=np.float32)
    y = dropkit.dropout(x, rate, seed=27182818, inverted=False, backend="core").astype(np.float64)
    q = 1 - rate
    sd_mean = x0 * math.sqrt(q * (1 - q) / n)
    assert abs(y.mean() - x0 * q) <= Z * sd_mean
    y_eval = dropkit.dropout(x, rate, seed=0, inverted=False, training=False)
    np.testing.assert_array_equal(y_eval, np.float32(x0) * np.float32(q))


# ------------------------------------------------------------------------------------------
# Independence
# ------------------------------------------------------------------------------------------

N_CORR = 2**21
CORR_BOUND = Z / math.sqrt(N_CORR)


@pytest.mark.parametrize("lag", [1, 2, 8, 31, 32, 33, 64, 96, 127, 128, 129, 256, 2048])
@pytest.mark.parametrize("rate", [0.5, 0.1])
def test_no_correlation_between_positions(rate, lag):
    m = mask(N_CORR + lag, rate, seed=1618033, offset=77)
    r = correlation(m[:-lag], m[lag:])
    assert abs(r) <= CORR_BOUND, f"lag {lag}: correlation {r:+.2e} (bound {CORR_BOUND:.1e})"


SEED_PAIRS = [
    pytest.param(12345, 12346, id="s,s+1"),
    pytest.param(2**32 - 1, 2**32, id="2**32-1,2**32"),
    pytest.param(99, 99 + 2**32, id="s,s+2**32"),  # only the high key word differs
    pytest.param(2**63, 2**63 + 1, id="2**63,2**63+1"),
]


@pytest.mark.parametrize("rate", [0.5, 0.1])
@pytest.mark.parametrize("s1, s2", SEED_PAIRS)
def test_no_correlation_between_neighbouring_seeds(s1, s2, rate):
    a, b = mask(N_CORR, rate, seed=s1, offset=0), mask(N_CORR, rate, seed=s2, offset=0)
    r = correlation(a, b)
    assert abs(r) <= CORR_BOUND, f"seeds {s1}, {s2}: correlation {r:+.2e}"


OFFSET_PAIRS = [
    pytest.param(0, N_CORR, id="o,o+n"),
    pytest.param(1001, 1001 + N_CORR, id="odd o,o+n"),
    pytest.param(5, 5 + 128 * 2**32, id="o,o+128*2**32"),  # only the high counter word differs
    pytest.param(0, 2**63, id="0,2**63"),
]


@pytest.mark.parametrize("rate", [0.5, 0.1])
@pytest.mark.parametrize("o1, o2", OFFSET_PAIRS)
def test_no_correlation_between_stream_pieces(o1, o2, rate):
    a, b = mask(N_CORR, rate, seed=4, offset=o1), mask(N_CORR, rate, seed=4, offset=o2)
    r = correlation(a, b)
    assert abs(r) <= CORR_BOUND, f"offsets {o1}, {o2}: correlation {r:+.2e}"


@pytest.mark.parametrize("r1, r2", [(0.5, 0.25), (0.1, 0.9)])
def test_bits_of_different_planes_are_independent(r1, r2):
    """Plane 0 alone decides rate 0.5; planes 0-1 decide 0.25 and 0.75. The event 'u >= 2**31'
    and 'u mod 2**31 >= 2**30' (plane 1 alone) must be independent: derived from the nested
    masks, keep(0.25) & ~keep(0.5) has probability 1/4 exactly when plane 1 is independent of
    plane 0 (and likewise for rates 0.1 and 0.9)."""
    n = 2**21
    m1, m2 = mask(n, r1, seed=55), mask(n, r2, seed=55)
    lo, hi = (m1, m2) if r1 > r2 else (m2, m1)  # lo: fewer kept
    between = hi & ~lo
    q = keep_prob(min(r1, r2)) - keep_prob(max(r1, r2))
    assert_fraction(int(between.sum()), n, q, f"kept at {min(r1, r2)} but not at {max(r1, r2)}")
    assert not np.any(lo & ~hi)
