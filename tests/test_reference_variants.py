"""docs/rng.md sections 8-16 and their NumPy twins in ``dropkit.reference._variants``.

Expected values come from the text, not from the code under test: stream words are rebuilt from
``dropkit.philox4x32_10`` (and the pure-Python Philox of ``_helpers``), uniforms from integer
arithmetic, the float32 functions are held to the accuracy bounds that docs/rng.md section 11.4
states against float64 NumPy, normals are checked against the float64 Box-Muller formula and by
statistics with fixed seeds (5-sigma bounds, Kolmogorov-Smirnov against ``math.erf``), the sum
of section 15 against a plain Python loop written from the text.
"""
from __future__ import annotations

import math
import random
import re
import struct
from pathlib import Path

import numpy as np
import pytest

import dropkit
from _helpers import TWO32, TWO64, assert_same_bits, philox_py
from dropkit.reference import _kernels as K
from dropkit.reference import _variants as V

F32 = np.float32


def ulp32(ref: np.ndarray) -> np.ndarray:
    """Size of one binary32 ulp at each float64 reference value (as float64)."""
    return np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)


def rebuilt_words(seed: int, pos, draw: int = 0) -> np.ndarray:
    """docs/rng.md section 10 word for word: q = g // 4, counter (q lo, q hi, d, 1), word g mod 4."""
    pos = [int(g) for g in np.asarray(pos, dtype=np.uint64).ravel()]
    counter = np.array([[(g // 4) % TWO32, (g // 4) // TWO32, draw, 1] for g in pos], dtype=np.uint32)
    key = np.array([seed % TWO32, seed // TWO32], dtype=np.uint32)
    x = dropkit.philox4x32_10(counter.reshape(-1, 4), key)
    return np.array([x[i, g % 4] for i, g in enumerate(pos)], dtype=np.uint32)


# ------------------------------------------------------------------------------------------
# Section 10: words and uniforms
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, offset, n",
    [
        (0, 0, 37),
        (20240611, 3, 50),  # not a multiple of 4
        (0xDEADBEEF_CAFEBABE, 4 * TWO32 - 6, 20),  # q crosses 2**32: c1 goes 0 -> 1
        (TWO64 - 1, TWO64 - 9, 9),  # ends exactly at 2**64
    ],
)
@pytest.mark.parametrize("draw", [0, 5])
def test_continuous_words_rebuilt_from_philox(seed, offset, n, draw):
    got = V.continuous_words(seed, offset, n, draw)
    assert got.dtype == np.uint32 and got.shape == (n,)
    np.testing.assert_array_equal(got, rebuilt_words(seed, np.arange(n, dtype=np.uint64) + np.uint64(offset), draw))


def test_continuous_words_known_answer_and_kinds():
    # w(0..3) of seed 0 is philox((0, 0, 0, 1), (0, 0)), from the Python-int Philox.
    np.testing.assert_array_equal(V.continuous_words(0, 0, 4), np.array(philox_py([0, 0, 0, 1], [0, 0]), np.uint32))
    # Kind 1 never reads the Bernoulli outputs (kind 0) of the same counter.
    assert tuple(V.continuous_words(0, 0, 4)) != philox_py([0, 0, 0, 0], [0, 0])
    # Words at scattered positions equal the contiguous words at those positions.
    pos = np.array([5, 0, 5, 1 << 40, 3, (1 << 40) + 2], dtype=np.uint64)
    np.testing.assert_array_equal(V.continuous_words_at(pos, 77), rebuilt_words(77, pos))


def test_uniforms_exact_grid_never_0_or_1():
    k = np.arange(1 << 23, dtype=np.uint32)
    low = (k * np.uint32(2654435761)) & np.uint32(0x1FF)  # arbitrary low 9 bits: ignored
    u = V.uniforms((k << np.uint32(9)) | low)
    assert u.dtype == np.float32
    expected = (2.0 * k.astype(np.float64) + 1.0) * 2.0**-24  # (2k + 1) * 2**-24
    np.testing.assert_array_equal(u.astype(np.float64), expected)
    assert u.min() == 2.0**-24 and u.max() == 1.0 - 2.0**-24
    assert np.all((u > 0) & (u < 1))
    # 1 - U is on the grid and exact in binary32 (section 10).
    np.testing.assert_array_equal((F32(1) - u).astype(np.float64), 1.0 - expected)


# ------------------------------------------------------------------------------------------
# Section 11: float32 functions against float64 NumPy, with the bounds of section 11.4
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_uniforms() -> np.ndarray:
    return V.uniforms(np.arange(1 << 23, dtype=np.uint32) << np.uint32(9))


def test_log_accuracy_over_all_uniforms(all_uniforms):
    u = all_uniforms
    got = V.log_f32(u)
    assert got.dtype == np.float32
    ref = np.log(u.astype(np.float64))
    err = np.abs(got.astype(np.float64) - ref)
    assert (err / ulp32(ref)).max() <= 0.83
    assert err.max() <= 4.91e-7
    # Noise logit of section 13: bound, range and exact symmetry lam(1 - u) = -lam(u).
    lam = V.log_f32(u) - V.log_f32(F32(1) - u)
    ref_lam = np.log(u.astype(np.float64)) - np.log1p(-u.astype(np.float64))
    assert np.abs(lam.astype(np.float64) - ref_lam).max() <= 9.4e-7
    assert abs(float(lam.max()) - 16.6355) < 1e-4 and np.array_equal(lam, -lam[::-1])


def test_sincos_polynomials_over_all_t():
    j = np.arange(1 << 23, dtype=np.uint32)
    b = (j << np.uint32(7)) - np.uint32(0x20000000)  # quadrant 0, t = j * 2**-23 - 1/2
    c, s = V.sincos_quarter_f32(b)
    t = j.astype(np.float64) * 2.0**-23 - 0.5
    rc, rs = np.cos(np.pi / 2 * t), np.sin(np.pi / 2 * t)
    ec, es = np.abs(c - rc), np.abs(s - rs)
    assert (ec / ulp32(rc)).max() <= 1.25
    nz = rs != 0
    assert (es[nz] / ulp32(rs[nz])).max() <= 1.71 and np.all(s[~nz] == 0)
    assert max(ec.max(), es.max()) <= 8.71e-8


def test_sincos_quadrants_and_full_circle():
    # theta = 2*pi*K/2**25 with K = b >> 7: quarter turns are exact.
    K_ = np.array([0, 1 << 23, 1 << 24, 3 << 23], dtype=np.uint32)
    c, s = V.sincos_quarter_f32(K_ << np.uint32(7) | np.uint32(0x55))
    np.testing.assert_array_equal(c, F32([1, 0, -1, 0]))
    np.testing.assert_array_equal(s, F32([0, 1, 0, -1]))
    # Every quadrant against float64 on a strided sample of all 2**25 angles.
    k = np.arange(0, 1 << 25, 97, dtype=np.uint32)
    c, s = V.sincos_quarter_f32(k << np.uint32(7))
    ang = 2 * np.pi * k.astype(np.float64) / 2.0**25
    assert np.abs(c - np.cos(ang)).max() < 1.0e-7 and np.abs(s - np.sin(ang)).max() < 1.0e-7


def test_exp_accuracy():
    a = np.linspace(-64, 64, 2_000_001).astype(np.float32)
    got = V.exp_f32(a)
    ref = np.exp(a.astype(np.float64))
    assert (np.abs(got - ref) / ulp32(ref)).max() <= 0.98
    np.testing.assert_array_equal(V.exp_f32(F32([0.0])), F32([1.0]))


# ------------------------------------------------------------------------------------------
# Sections 10-13 as scalar Python, constants read from the tables of docs/rng.md
# ------------------------------------------------------------------------------------------
# One binary32 operation = the binary64 result of the operation on binary32 operands, rounded
# to binary32: exact for +, -, *, / and sqrt, since 53 >= 2 * 24 + 2 (no double-rounding error).

RNG_MD = Path(__file__).resolve().parents[1] / "docs" / "rng.md"


def r32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bits32(v: float) -> int:
    return struct.unpack("<I", struct.pack("<f", v))[0]


def from_bits(n: int) -> float:
    return struct.unpack("<f", struct.pack("<I", n & 0xFFFFFFFF))[0]


@pytest.fixture(scope="module")
def doc():
    """The binary32 constants of docs/rng.md section 11 (name -> value), from its tables."""
    table = {}
    for m in re.finditer(r"^\| (\w+) \| `0x([0-9A-Fa-f]{8})` \|", RNG_MD.read_text(), re.M):
        assert m.group(1) not in table, f"constant {m.group(1)} defined twice in docs/rng.md"
        table[m.group(1)] = from_bits(int(m.group(2), 16))
    expected = {"LG1", "LG2", "LG3", "LG4", "LN2_HI", "LN2_LO", "LOG2E", "SHIFT", "CW1", "CW2",
                "P0", "P1", "P2", "P3", "P4", "P5", "S1", "S3", "S5", "S7", "C2", "C4", "C6", "C8"}
    assert set(table) == expected
    return table


def doc_uniform(w: int) -> float:
    return r32(r32(float(w >> 9) * 2.0**-23) + 2.0**-24)


def doc_log(c, v: float) -> float:
    ix = (bits32(v) + (0x3F800000 - 0x3F3504F3)) & 0xFFFFFFFF
    k = (ix >> 23) - 127
    m = from_bits((ix & 0x007FFFFF) + 0x3F3504F3)
    f = r32(m - 1)
    s = r32(f / r32(2 + f))
    z = r32(s * s)
    w = r32(z * z)
    t1 = r32(w * r32(c["LG2"] + r32(w * c["LG4"])))
    t2 = r32(z * r32(c["LG1"] + r32(w * c["LG3"])))
    rr = r32(t2 + t1)
    hfsq = r32(r32(0.5 * f) * f)
    dk = float(k)
    acc = r32(s * r32(hfsq + rr))
    acc = r32(acc + r32(dk * c["LN2_LO"]))
    acc = r32(acc - hfsq)
    acc = r32(acc + f)
    return r32(acc + r32(dk * c["LN2_HI"]))


def doc_exp(c, a: float) -> float:
    nf = r32(r32(r32(a * c["LOG2E"]) + c["SHIFT"]) - c["SHIFT"])
    r = r32(r32(a - r32(nf * c["CW1"])) - r32(nf * c["CW2"]))
    z = r32(r * r)
    p = c["P0"]
    for name in ("P1", "P2", "P3", "P4", "P5"):
        p = r32(r32(p * r) + c[name])
    e = r32(r32(r32(p * z) + r) + 1)
    n = int(nf)
    return r32(e * from_bits((n + 127) << 23))


def doc_sincos(c, b: int):
    bp = (b + 0x20000000) & 0xFFFFFFFF
    n = bp >> 30
    j = (bp >> 7) & 0x007FFFFF
    t = r32(float(j - 2**22) * 2.0**-23)
    t2 = r32(t * t)
    s = r32(r32(r32(r32(r32(r32(c["S7"] * t2) + c["S5"]) * t2) + c["S3"]) * t2) + c["S1"])
    s = r32(s * t)
    cc = r32(r32(r32(r32(r32(r32(c["C8"] * t2) + c["C6"]) * t2) + c["C4"]) * t2) + c["C2"])
    cc = r32(r32(cc * t2) + 1)
    neg = lambda v: from_bits(bits32(v) ^ 0x80000000)  # noqa: E731 (sign-bit flip)
    return [(cc, s), (neg(s), cc), (neg(cc), neg(s)), (s, neg(cc))][n]


def doc_normal(c, seed: int, g: int) -> float:
    h = g - g % 2
    a, b = rebuilt_words(seed, [h, h + 1])
    rho = r32(math.sqrt(r32(-2 * doc_log(c, doc_uniform(int(a))))))
    cos_v, sin_v = doc_sincos(c, int(b))
    return r32(rho * (sin_v if g % 2 else cos_v))


def doc_kappa(c, seed: int, g: int, logit: float, inv_t: float) -> float:
    u = doc_uniform(int(rebuilt_words(seed, [g])[0]))
    lam = r32(doc_log(c, u) - doc_log(c, r32(1 - u)))
    x = r32(r32(r32(logit) + lam) * r32(inv_t))
    a = min(max(x, -64.0), 64.0)
    return r32(1 / r32(1 + doc_exp(c, a)))


def test_reference_constants_are_the_documented_ones(doc):
    # A one-ulp change of a high-order coefficient rarely shows in an output bit: compare directly.
    ours = {"LG1": V._LG1, "LG2": V._LG2, "LG3": V._LG3, "LG4": V._LG4, "LN2_HI": V._LN2_HI,
            "LN2_LO": V._LN2_LO, "LOG2E": V._LOG2E, "SHIFT": V._SHIFTER, "CW1": V._EXP_CW1,
            "CW2": V._EXP_CW2, "S1": V._SIN_S[0], "S3": V._SIN_S[1], "S5": V._SIN_S[2],
            "S7": V._SIN_S[3], "C2": V._COS_C[0], "C4": V._COS_C[1], "C6": V._COS_C[2],
            "C8": V._COS_C[3]}
    ours.update({f"P{i}": V._EXP_P[i] for i in range(6)})
    assert {k: bits32(float(v)) for k, v in ours.items()} == {k: bits32(v) for k, v in doc.items()}


def test_float32_sequences_bit_exact_against_the_text(doc):
    rnd = random.Random(2024)
    words = [0, 1 << 9, 0xFFFFFFFF, 0x80000000, 0x7FFFFE00] + [rnd.getrandbits(32) for _ in range(1500)]
    u = V.uniforms(np.array(words, np.uint32))
    assert [float(v) for v in u] == [doc_uniform(w) for w in words]
    got = V.log_f32(u)
    assert [bits32(float(v)) for v in got] == [bits32(doc_log(doc, float(v))) for v in u]
    v1 = F32(1) - u
    assert [bits32(float(v)) for v in V.log_f32(v1)] == [bits32(doc_log(doc, float(v))) for v in v1]
    cs, sn = V.sincos_quarter_f32(np.array(words, np.uint32))
    ref = [doc_sincos(doc, w) for w in words]
    assert [bits32(float(v)) for v in cs] == [bits32(r[0]) for r in ref]
    assert [bits32(float(v)) for v in sn] == [bits32(r[1]) for r in ref]
    a = [0.0, -64.0, 64.0, 0.5, -0.5] + [rnd.uniform(-64, 64) for _ in range(1500)]
    a32 = np.array(a, np.float32)
    assert [bits32(float(v)) for v in V.exp_f32(a32)] == [bits32(doc_exp(doc, float(v))) for v in a32]


def test_normals_and_concrete_bit_exact_against_the_text(doc):
    seed, offset, n = 0xDEADBEEF_CAFEBABE, 2**33 + 1, 300
    got = V.normals(seed, offset, n)
    assert [bits32(float(v)) for v in got] == [bits32(doc_normal(doc, seed, offset + i)) for i in range(n)]
    sigma = V.gaussian_sigma(0.25)
    x = np.linspace(-3, 3, n, dtype=np.float32)
    y = V.gaussian_apply(x, np.empty_like(x), sigma, seed, offset)
    ref = [r32(float(xi) * r32(r32(r32(sigma) * doc_normal(doc, seed, offset + i)) + 1)) for i, xi in enumerate(x)]
    assert [bits32(float(v)) for v in y] == [bits32(v) for v in ref]
    for logit, temp in ((0.7, 0.1), (-2.0, 1e-30), (0.0, 3.0)):
        lg, it, sc, _ = V.concrete_params(logit, temp)
        pos = np.arange(n, dtype=np.uint64) + np.uint64(offset)
        kap = V.concrete_noise(pos, seed, lg, it)
        assert [bits32(float(v)) for v in kap] == [bits32(doc_kappa(doc, seed, offset + i, lg, it)) for i in range(n)]
        yc = V.concrete_apply(x, np.empty_like(x), lg, it, sc, seed, offset)
        refc = [r32(float(xi) * r32(doc_kappa(doc, seed, offset + i, lg, it) * r32(sc))) for i, xi in enumerate(x)]
        assert [bits32(float(v)) for v in yc] == [bits32(v) for v in refc]


# ------------------------------------------------------------------------------------------
# Section 12: normals
# ------------------------------------------------------------------------------------------


def box_muller64(a: np.ndarray, b: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """Section 12.1 in float64 from the words: rho from U(a), angle 2*pi*(b >> 7)/2**25."""
    u = ((a >> np.uint32(9)).astype(np.float64) * 2 + 1) * 2.0**-24
    rho = np.sqrt(-2 * np.log(u))
    ang = 2 * np.pi * (b >> np.uint32(7)).astype(np.float64) / 2.0**25
    return np.where(odd, rho * np.sin(ang), rho * np.cos(ang))


def test_normals_follow_box_muller_of_rebuilt_words():
    seed, offset, n = 99, 4 * 1000 + 1, 203  # starts on an odd position
    pos = np.arange(n, dtype=np.uint64) + np.uint64(offset)
    h = pos & ~np.uint64(1)
    ref = box_muller64(rebuilt_words(seed, h), rebuilt_words(seed, h + np.uint64(1)), (pos & np.uint64(1)) == 1)
    got = V.normals(seed, offset, n)
    assert got.dtype == np.float32
    assert np.abs(got - ref).max() <= 1.1e-6


def test_normals_error_bound_on_random_words():
    rng = np.random.default_rng(7)
    a = rng.integers(0, TWO32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, TWO32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    a[:1000] = np.arange(1000, dtype=np.uint32) << np.uint32(9)  # the smallest uniforms: the tails
    rho = np.sqrt(F32(-2) * V.log_f32(V.uniforms(a)))
    c, s = V.sincos_quarter_f32(b)
    for vals, odd in ((rho * c, False), (rho * s, True)):
        assert np.abs(vals - box_muller64(a, b, np.full(a.size, odd))).max() <= 1.1e-6


def test_radius_tails_exact_over_all_uniforms(all_uniforms):
    # P(rho > k) over the 2**23 equally likely uniforms against the Rayleigh tail exp(-k**2/2).
    rho = np.sqrt(F32(-2) * V.log_f32(all_uniforms))
    assert np.abs(rho - np.sqrt(-2 * np.log(all_uniforms.astype(np.float64)))).max() <= 3.5e-7
    assert float(rho.max()) == 5.7681074142456055  # largest |eps| (K = 0, cos = 1)
    for k in (1, 2, 3, 4, 5):
        frac = np.count_nonzero(rho > k) / 2.0**23
        assert abs(frac - math.exp(-k * k / 2)) <= 2.0**-23
    assert np.count_nonzero(rho > 5) == 31  # section 12.1


def normal_cdf(x: np.ndarray) -> np.ndarray:
    erf = np.frompyfunc(math.erf, 1, 1)
    return 0.5 * (1.0 + erf(x / math.sqrt(2.0)).astype(np.float64))


@pytest.fixture(scope="module")
def million_normals() -> np.ndarray:
    return V.normals(20240611, 12345, 1_000_000).astype(np.float64)


def test_normals_moments(million_normals):
    e = million_normals
    n = e.size
    assert abs(e.mean()) < 5 / math.sqrt(n)
    assert abs(e.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs((e**3).mean()) < 5 * math.sqrt(15 / n)  # Var(Z**3) = 15
    assert abs((e**4).mean() - 3) < 5 * math.sqrt(96 / n)  # Var(Z**4) = 105 - 9
    # The two normals of a pair are uncorrelated.
    pairs = e[: n - n % 2].reshape(-1, 2)
    assert abs((pairs[:, 0] * pairs[:, 1]).mean()) < 5 / math.sqrt(pairs.shape[0])


def test_normals_kolmogorov_smirnov(million_normals):
    x = np.sort(million_normals)
    n = x.size
    cdf = normal_cdf(x)
    d = max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max())
    # Asymptotic KS: P(sqrt(n) D > c) ~ 2 exp(-2 c**2); c = 2.69 is a 1e-6 level.
    assert math.sqrt(n) * d < math.sqrt(math.log(2 / 1e-6) / 2)


def test_normals_tail_frequencies(million_normals):
    a = np.abs(million_normals)
    n = a.size
    for k in (1, 2, 3, 4, 5):
        p = math.erfc(k / math.sqrt(2))
        count = np.count_nonzero(a > k)
        assert abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1, (k, count, n * p)
    assert a.max() <= 5.7681074142456055


# ------------------------------------------------------------------------------------------
# Section 12.2: Gaussian dropout
# ------------------------------------------------------------------------------------------


def test_gaussian_apply_definition_and_dtypes():
    seed, offset, n = 3, 1001, 517
    sigma = V.gaussian_sigma(0.3)
    assert sigma == math.sqrt(0.3 / (1.0 - 0.3))
    m = (F32(sigma) * V.normals(seed, offset, n)) + F32(1)  # section 12.2, two roundings
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal(n)
    for dtype in (np.float16, np.float32, np.float64):
        x = x64.astype(dtype)
        out = np.empty_like(x)
        assert V.gaussian_apply(x, out, sigma, seed, offset) is out
        ct = np.float64 if dtype == np.float64 else np.float32
        assert_same_bits(out, (x.astype(ct) * m.astype(ct)).astype(dtype))
    # In place, and rate 0 (sigma 0) is the identity multiplier.
    x = x64.astype(np.float32)
    y = V.gaussian_apply(x, np.empty_like(x), sigma, seed, offset)
    V.gaussian_apply(x, x, sigma, seed, offset)
    assert_same_bits(x, y)
    assert_same_bits(V.gaussian_apply(y, np.empty_like(y), 0.0, seed, offset), y)
    with pytest.raises(ValueError, match="rate must be in"):
        V.gaussian_sigma(1.0)


def test_gaussian_statistics():
    n, rate = 1_000_000, 0.5
    sigma = V.gaussian_sigma(rate)  # 1.0
    y = V.gaussian_apply(np.ones(n, np.float32), np.empty(n, np.float32), sigma, 11, 0).astype(np.float64)
    assert abs(y.mean() - 1) < 5 * sigma / math.sqrt(n)
    assert abs(y.var() - sigma**2) < 5 * sigma**2 * math.sqrt(2 / n)


def test_gaussian_broadcast_and_blocks():
    seed, offset = 5, 77
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) + 1
    ps = V.noise_pstrides(x.shape, (2, 3, 1, 1))
    assert ps == (3, 1, 0, 0)
    y = V.gaussian_apply(x, np.empty_like(x), 0.7, seed, offset, ps)
    m = (F32(0.7) * V.normals(seed, offset, 6)) + F32(1)
    assert_same_bits(y, x * m.reshape(2, 3, 1, 1))
    # A block of a larger array with the global strides gets the same values as the whole call.
    big = np.arange(6 * 7, dtype=np.float32).reshape(6, 7) - 20
    full = V.gaussian_apply(big, np.empty_like(big), 0.4, seed, offset)
    gs = V.block_pstrides(big.shape)
    blk = np.ascontiguousarray(big[2:5, 3:6])
    got = V.gaussian_apply(blk, np.empty_like(blk), 0.4, seed, offset + 2 * gs[0] + 3 * gs[1], gs)
    assert_same_bits(got, full[2:5, 3:6])


# ------------------------------------------------------------------------------------------
# Sections 8 and 9: positions, broadcast Bernoulli masks, rate arrays
# ------------------------------------------------------------------------------------------


def test_positions_rule():
    pos = V.positions((2, 3, 4), V.noise_pstrides((2, 3, 4), (2, 3, 1)), 10)
    assert pos.dtype == np.uint64 and pos.shape == (2, 3, 4)
    np.testing.assert_array_equal(pos[1, 2], [15, 15, 15, 15])  # the example of section 8.1
    np.testing.assert_array_equal(V.positions((2, 3), None, 7).ravel(), np.arange(7, 13))
    assert V.noise_pstrides((4, 5, 6), (None, 1, None)) == (6, 0, 1)
    with pytest.raises(ValueError, match="does not broadcast"):
        V.noise_pstrides((4, 5), (4, 2))
    with pytest.raises(ValueError, match="one per axis"):
        V.noise_pstrides((4, 5), (4,))
    with pytest.raises(ValueError, match="below 2\\*\\*64"):
        V.positions((3,), (1,), TWO64 - 2)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 1.0])
def test_noise_shape_equal_to_x_gives_standard_mask(rate):
    x = np.linspace(-3, 3, 3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7)
    t = round(rate * TWO32)
    s = 0.0 if rate == 1 else 1 / (1 - rate)
    expected = K.bernoulli_apply(x.ravel(), np.empty(x.size, np.float32), t, s, 42, 1000).reshape(x.shape)
    for ns in (x.shape, None, (None, 5, None)):
        got = V.bernoulli_apply_nd(x, np.empty_like(x), t, s, 42, 1000, V.noise_pstrides(x.shape, ns))
        assert_same_bits(got, expected)


def test_broadcast_bernoulli_is_the_small_mask_broadcast():
    shape, ns = (4, 3, 8), (4, 3, 1)
    x = np.ones(shape, np.float64)
    t = round(0.5 * TWO32)
    got = V.bernoulli_apply_nd(x, np.empty_like(x), t, 2.0, 9, 500, V.noise_pstrides(shape, ns))
    keep = K.bernoulli_keep(12, t, 9, 500).reshape(ns)
    np.testing.assert_array_equal(got, np.broadcast_to(np.where(keep, 2.0, 0.0), shape))


def test_rate_thresholds_round_half_even():
    rates = [0.0, 1.0, 0.1, 0.5, 0.3, 2.0**-33, 3 * 2.0**-33, 1 - 2.0**-33, 0.25 + 5 * 2.0**-33]
    np.testing.assert_array_equal(V.rate_thresholds(rates), [round(r * TWO32) for r in rates])
    with pytest.raises(ValueError, match="rate must be in \\[0, 1\\], got 1.5"):
        V.rate_thresholds([0.2, 1.5])
    with pytest.raises(ValueError, match="rate must be in"):
        V.rate_thresholds([float("nan")])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_constant_rate_array_equals_scalar_rate(dtype):
    x = np.linspace(-2, 2, 999).astype(dtype)
    for rate in (0.0, 0.1, 0.37, 0.5, 1.0):
        t_arr = V.rate_thresholds(np.full(x.shape, rate))
        s_arr = V.rate_scales(np.full(x.shape, rate), dtype)
        got = V.bernoulli_apply_nd(x, np.empty_like(x), t_arr, s_arr, 123, 77)
        scalar = K.bernoulli_apply(x, np.empty_like(x), round(rate * TWO32), 0.0 if rate == 1 else 1 / (1 - rate), 123, 77)
        assert_same_bits(got, scalar)


def test_per_feature_rates_match_scalar_rate_per_column():
    rates = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    x = np.linspace(1, 2, 200 * 5, dtype=np.float32).reshape(200, 5)
    got = V.bernoulli_apply_nd(x, np.empty_like(x), V.rate_thresholds(rates), V.rate_scales(rates, x.dtype), 8, 3)
    for j, r in enumerate(rates):
        full = K.bernoulli_apply(x.ravel(), np.empty(x.size, np.float32), round(r * TWO32),
                                 0.0 if r == 1 else 1 / (1 - r), 8, 3).reshape(x.shape)
        assert_same_bits(got[:, j], full[:, j])
    # Per-feature keep fractions within 5 sigma on a larger array.
    n = 40_000
    keep = V.bernoulli_keep_at(V.positions((n, 5), None, 0), V.rate_thresholds(rates), 2024)
    for j, r in enumerate(rates):
        assert abs(keep[:, j].mean() - (1 - r)) <= 5 * math.sqrt(r * (1 - r) / n) + 1e-12


# ------------------------------------------------------------------------------------------
# Section 13: concrete dropout
# ------------------------------------------------------------------------------------------


def test_concrete_noise_range_and_extremes():
    pos = np.arange(100_000, dtype=np.uint64)
    for logit, temp in ((0.0, 0.1), (3.0, 1e-30), (-30.0, 1e-30), (30.0, 2.0), (-0.4, 1e3)):
        _, it, sc, _ = V.concrete_params(logit, temp)
        kappa = V.concrete_noise(pos, 1, logit, it)
        assert kappa.dtype == np.float32 and np.all((kappa >= 0) & (kappa <= 1))
        assert np.all(np.isfinite(kappa * F32(sc)))
    assert np.all(V.concrete_noise(pos[:50], 1, float("-inf"), 10.0) == 1)  # p = 0
    assert float(V.concrete_noise(pos[:1], 1, 1e30, 1e30)[0]) == pytest.approx(1.0 / (1.0 + float(V.exp_f32(F32(64)))))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        V.concrete_params(0.0, 0.0)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_concrete_keep_fraction_at_small_temperature(p):
    n = 1_000_000
    logit = math.log(p) - math.log1p(-p)
    kappa = V.concrete_noise(np.arange(n, dtype=np.uint64), 31, logit, 1 / 0.001).astype(np.float64)
    assert abs(kappa.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    # z = 1 - kappa is nearly binary at this temperature.
    assert np.mean((kappa > 0.01) & (kappa < 0.99)) < 0.01


def test_concrete_apply_definition_and_unbiased():
    logit, it, sc, p = V.concrete_params(-0.5, 0.1)
    assert p == 1 / (1 + math.exp(0.5)) and sc == 1 / (1 - p)
    n = 200_000
    x = np.ones(n, np.float32)
    y = V.concrete_apply(x, np.empty_like(x), logit, it, sc, 4, 10)
    kappa = V.concrete_noise(np.arange(n, dtype=np.uint64) + np.uint64(10), 4, logit, it)
    assert_same_bits(y, kappa * F32(sc))
    # E[kappa] = 1 - p only as T -> 0; at T = 0.1 the mean of y is close to 1.
    assert abs(y.astype(np.float64).mean() - 1) < 0.02


def test_concrete_backward_finite_difference():
    rng = np.random.default_rng(5)
    n, theta, temp, seed, offset = 3000, -0.3, 0.5, 17, 40_000
    x = rng.standard_normal(n)
    g = rng.standard_normal(n)

    def loss(th):
        lg, it, sc, _ = V.concrete_params(th, temp)
        return float(np.dot(g, V.concrete_apply(x, np.empty_like(x), lg, it, sc, seed, offset)))

    lg, it, sc, p = V.concrete_params(theta, temp)
    dx, dtheta = V.concrete_backward(g, x, np.empty_like(g), lg, it, sc, p, seed, offset)
    assert_same_bits(dx, V.concrete_apply(g, np.empty_like(g), lg, it, sc, seed, offset))
    h = 1e-3
    fd = (loss(theta + h) - loss(theta - h)) / (2 * h)
    assert dtheta == pytest.approx(fd, rel=2e-3, abs=1e-3)
    # d loss / d x is exactly what backward returns (the loss is linear in x).
    i = 123
    e = np.zeros(n)
    e[i] = 1.0
    y_e = V.concrete_apply(e, np.empty_like(e), lg, it, sc, seed, offset)
    assert dx[i] == g[i] * y_e[i]


# ------------------------------------------------------------------------------------------
# Section 14: alpha dropout
# ------------------------------------------------------------------------------------------


def test_alpha_constants_follow_the_text():
    ap = -1.7580993408473766
    rnd = random.Random(4)
    for r in [0.05, 0.1, 0.5, 0.9] + [rnd.random() for _ in range(200)]:
        a, b, fill = V.alpha_constants(r)
        assert a == 1.0 / math.sqrt((1.0 - r) * (1.0 + r * (ap * ap)))
        assert b == -((a * ap) * r) and fill == a * ap + b
        # PyTorch's form: a = ((alpha^2 p + 1)(1 - p))^(-1/2), b = alpha * a * p (alpha = 1.758...).
        assert a == pytest.approx(((ap * ap * r + 1) * (1 - r)) ** -0.5, rel=1e-15)
        assert b == pytest.approx(-ap * a * r, rel=1e-15)
    assert V.alpha_constants(1.0) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_alpha_keeps_mean_zero_variance_one(rate):
    n, seed, offset = 1_000_000, 8, 55
    x = np.random.default_rng(3).standard_normal(n)
    a, b, fill = V.alpha_constants(rate)
    t = round(rate * TWO32)
    y = V.alpha_apply(x, np.empty_like(x), t, a, b, fill, seed, offset)
    keep = K.bernoulli_keep(n, t, seed, offset)
    np.testing.assert_array_equal(y[~keep], fill)
    np.testing.assert_array_equal(y[keep], (x[keep] * a) + b)
    assert abs(y.mean()) < 5 * math.sqrt(y.var() / n)
    assert abs(y.var() - 1) < 5 * math.sqrt(((y - y.mean()) ** 2).var() / n)


def test_alpha_float32_roundings_and_feature_alpha():
    rate, seed, offset = 0.2, 21, 0
    a, b, fill = V.alpha_constants(rate)
    t = round(rate * TWO32)
    x = np.linspace(-4, 4, 2 * 6 * 3 * 3, dtype=np.float32).reshape(2, 6, 3, 3)
    x.flat[5] = np.nan
    y = V.alpha_apply(x, np.empty_like(x), t, a, b, fill, seed, offset)
    keep = K.bernoulli_keep(x.size, t, seed, offset).reshape(x.shape)
    expected = np.where(keep, (x * F32(a)) + F32(b), F32(fill))
    assert_same_bits(y, expected)
    # Feature alpha: one keep bit per (sample, channel), from the positions of the (2, 6) noise.
    ps = V.noise_pstrides(x.shape, (2, 6, 1, 1))
    yf = V.alpha_apply(x, np.empty_like(x), t, a, b, fill, seed, offset, ps)
    kc = K.bernoulli_keep(12, t, seed, offset).reshape(2, 6, 1, 1)
    assert_same_bits(yf, np.where(kc, (x * F32(a)) + F32(b), F32(fill)))
    # Rate 1: everything +0.0, NaN included.
    y1 = V.alpha_apply(x, np.empty_like(x), TWO32, *V.alpha_constants(1.0), seed, offset)
    assert_same_bits(y1, np.zeros_like(x))


# ------------------------------------------------------------------------------------------
# Section 15: deterministic sums
# ------------------------------------------------------------------------------------------


def python_sum(values, offset):
    """Section 15 as a plain loop over Python floats (binary64, round to nearest even)."""
    lanes = {}
    for i, v in enumerate(values):
        r = offset + i
        acc = lanes.setdefault(r // 2**14, [0.0] * 16)
        acc[r % 16] = acc[r % 16] + v
    total = 0.0
    for c in sorted(lanes):
        acc = list(lanes[c])
        h = 8
        while h:
            for lane in range(h):
                acc[lane] = acc[lane] + acc[lane + h]
            h //= 2
        total = total + acc[0]
    return total


@pytest.fixture(scope="module")
def summands():
    rng = np.random.default_rng(11)
    # A spread of magnitudes so that the order of additions shows in the last bits.
    return rng.standard_normal(40_000) * np.exp(rng.uniform(-5, 5, 40_000))


@pytest.mark.parametrize("offset", [0, 12345, 2**14 - 3, 2**40 + 7])
def test_sum_follows_the_text(summands, offset):
    got = V.deterministic_sum(summands, offset)
    assert got == python_sum(summands.tolist(), offset)
    assert V.deterministic_sum(summands[:0], offset) == 0.0


def test_sum_order_is_visible(summands):
    # The input is order-sensitive, so the equality above is a real check of the order.
    assert python_sum(summands.tolist(), 12345) != python_sum(summands.tolist(), 12346)
    assert python_sum(summands.tolist(), 12345) != math.fsum(summands)


def test_sum_split_at_chunk_boundaries(summands):
    offset = 5000
    first, whole = V.chunk_partials(summands, offset)
    assert first == 0
    cut1, cut2 = 2**14 - offset, 2 * 2**14 - offset  # element indices at chunk boundaries
    parts = []
    for lo, hi in ((0, cut1), (cut1, cut2), (cut2, summands.size)):
        c, p = V.chunk_partials(summands[lo:hi], offset + lo)
        assert c == (offset + lo) // 2**14
        parts.append(p)
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    total = 0.0
    for p in np.concatenate(parts).tolist():
        total = total + p
    assert total == V.deterministic_sum(summands, offset)
