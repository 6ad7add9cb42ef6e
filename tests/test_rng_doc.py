"""The sentences of docs/rng.md sections 2-7 that are about values and errors rather than the
stream itself (tests/test_stream_spec.py rebuilds the stream): how a rate is converted, the
threshold near rate 1, the exact scale expression, classic evaluation at rate 1, subnormals, the
identity cases, and the table of bad arguments (parsed from the document, so that the table and
the code cannot drift apart).

Expected values come from Python's exact rational arithmetic (``fractions.Fraction``), NumPy
arithmetic written from the sentence under test, and the reference kernels called with an
explicitly computed threshold.
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import dropkit
from dropkit.reference import _kernels as ref_kernels

from _helpers import TWO32, TWO64, assert_same_bits, bits

FLOATS = (np.float16, np.float32, np.float64)
RNG_MD = Path(__file__).resolve().parents[1] / "docs" / "rng.md"
# Fixtures (conftest.py): ``backend`` (core, numpy), ``backend_on_target`` (the core on every SIMD
# target of this CPU, then numpy), ``restore_runtime``.


def exact_threshold(rate) -> int:
    """§4 with exact rationals: t = round_half_even(rate * 2**32), rate taken as its binary64."""
    return round(Fraction(float(rate)) * TWO32)  # Fraction rounds half to even


# ------------------------------------------------------------------------------------------
# §4: how a rate of another type is converted
# ------------------------------------------------------------------------------------------


def test_documented_thresholds():
    # The three numbers quoted in §4, from the exact values of the three rates.
    assert Fraction(float(np.float32(0.1))) == Fraction("0.100000001490116119384765625")
    assert exact_threshold(np.float32(0.1)) == 429496736
    assert exact_threshold(0.1) == 429496730
    assert Fraction(float(np.float16(0.1))) == Fraction("0.0999755859375")
    assert exact_threshold(np.float16(0.1)) == 429391872
    # dropkit's own threshold helper agrees with the rational computation
    for r in (0.1, 0.3, 0.5, 1 / 3, 0.9999999, 1 - 2.0**-33, np.nextafter(1 - 2.0**-33, 0)):
        assert dropkit._api.threshold(float(r)) == exact_threshold(r)


@pytest.mark.parametrize("rate", [np.float16(0.1), np.float16(0.3), np.array(np.float16(0.7)),
                                  np.float32(0.1), np.float32(1 / 3)], ids=repr)
def test_non_binary64_rate_is_converted_exactly(backend, rate):
    n, seed, offset = 1 << 20, 12345, 77
    t = exact_threshold(rate)
    want = ref_kernels.bernoulli_keep(n, t, seed, offset)  # threshold given explicitly
    got = dropkit.dropout_mask(n, rate, seed=seed, offset=offset, backend=backend)
    np.testing.assert_array_equal(got, want)
    if np.asarray(rate).dtype == np.float16:
        # The test can fail: the decimal the rate prints as gives another mask.
        decimal = float(str(rate))  # 0.1, 0.3, 0.7: the shortest decimal that prints
        assert exact_threshold(decimal) != t
        assert (dropkit.dropout_mask(n, decimal, seed=seed, offset=offset, backend=backend) != got).any()


def test_wide_rates_are_rounded_to_binary64(backend):
    n = 4096
    for rate in (Fraction(1, 3), np.longdouble(1) / np.longdouble(3)):
        want = ref_kernels.bernoulli_keep(n, exact_threshold(float(rate)), 5, 0)
        np.testing.assert_array_equal(dropkit.dropout_mask(n, rate, seed=5, backend=backend), want)


# ------------------------------------------------------------------------------------------
# §4: rates just below 1
# ------------------------------------------------------------------------------------------

NEAR_ONE = [1 - 2.0**-33, 1 - 2.0**-40, float(np.nextafter(1.0, 0.0))]


@pytest.mark.parametrize("rate", NEAR_ONE, ids=repr)
@pytest.mark.parametrize("dtype", FLOATS)
def test_rates_just_below_one_drop_everything(backend_on_target, rate, dtype):
    backend = backend_on_target
    assert exact_threshold(rate) == TWO32
    assert exact_threshold(np.nextafter(1 - 2.0**-33, 0)) == TWO32 - 1  # the last rate below
    x = np.array([1.0, -1.0, np.inf, -np.inf, np.nan, -0.0, 3e4, 1e-5] * 300, dtype=dtype)
    assert not dropkit.dropout_mask(x.size, rate, seed=9, backend=backend).any()
    for inverted in (True, False):
        y = dropkit.dropout(x, rate, seed=9, inverted=inverted, backend=backend)
        assert (bits(y) == 0).all()  # +0.0 everywhere, as at rate 1
        g = dropkit.dropout_backward(x, rate, seed=9, inverted=inverted, backend=backend)
        assert (bits(g) == 0).all()
    s = 1.0 / (1.0 - rate)
    assert 2.0**33 <= s <= 2.0**53 and np.isfinite(np.float32(s))  # the finite, unused scale
    # classic evaluation: no mask, x * (1 - rate) with the IEEE results (sign kept, inf stays)
    y = dropkit.dropout(x, rate, seed=9, training=False, inverted=False, backend=backend)
    ct = np.float64 if dtype == np.float64 else np.float32
    with np.errstate(invalid="ignore"):
        assert_same_bits(y, (x.astype(ct) * ct(1.0 - rate)).astype(dtype))


# ------------------------------------------------------------------------------------------
# §5: the scale expression
# ------------------------------------------------------------------------------------------

SCALE_RATES = [0.1, 0.2, 0.3, 1 / 3, 0.7, 0.9, 0.01, 1e-9, 0.123456789, 0.987654321]


@pytest.mark.parametrize("dtype", FLOATS)
def test_scale_is_binary64_quotient_rounded_once(backend_on_target, dtype):
    backend = backend_on_target
    ct = np.float64 if dtype == np.float64 else np.float32
    x = np.random.default_rng(3).uniform(-4, 4, 4000).astype(dtype)
    differs_from_alternative = False
    for rate in SCALE_RATES:
        s = ct(1.0 / (1.0 - rate))  # the documented expression
        if ct is np.float32:
            alternative = np.float32(1.0) / (np.float32(1.0) - np.float32(rate))  # in binary32
        else:
            q = 1 / (1 - Fraction(rate))  # the exact quotient, rounded once
            alternative = np.float64(float(q))  # float(Fraction) rounds correctly
        differs_from_alternative |= bool(s != alternative)
        keep = dropkit.dropout_mask(x.size, rate, seed=4, backend=backend)
        y = dropkit.dropout(x, rate, seed=4, backend=backend)
        want = np.where(keep, (x.astype(ct) * s).astype(dtype), dtype(0))
        assert_same_bits(y, want)
        ev = dropkit.dropout(x, rate, seed=4, training=False, inverted=False, backend=backend)
        assert_same_bits(ev, (x.astype(ct) * ct(1.0 - rate)).astype(dtype))
    assert differs_from_alternative  # the rates used can tell the expressions apart


# ------------------------------------------------------------------------------------------
# §5: classic evaluation at rate 1, subnormals
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
def test_classic_evaluation_at_rate_one_is_positive_zero(backend_on_target, dtype):
    x = np.array([-1.0, -0.0, 0.0, np.inf, -np.inf, np.nan, 2.5, -1e-3] * 50, dtype=dtype)
    y = dropkit.dropout(x, 1.0, seed=0, training=False, inverted=False, backend=backend_on_target)
    assert y.dtype == dtype and (bits(y) == 0).all()
    # the literal x * (1 - rate) would differ: -0.0 for negatives, NaN for infinities
    with np.errstate(invalid="ignore"):
        literal = x * dtype(0.0)
    assert np.signbit(literal).any() and np.isnan(literal[np.isinf(x)]).all()


def _subnormals(dtype):
    info = np.finfo(dtype)
    tiny = info.smallest_subnormal
    ks = np.arange(1, 401, dtype=np.float64)
    vals = np.concatenate([ks * float(tiny), -ks * float(tiny), [float(info.smallest_normal) * 0.75]])
    x = vals.astype(dtype)
    sub = (x != 0) & (np.abs(x) < info.smallest_normal)
    assert sub.all()
    return x


@pytest.mark.parametrize("dtype", FLOATS)
def test_no_flush_to_zero(backend_on_target, dtype):
    backend = backend_on_target
    x = _subnormals(dtype)
    ct = np.float64 if dtype == np.float64 else np.float32
    # classic training: a kept subnormal is x itself, bit for bit
    keep = dropkit.dropout_mask(x.size, 0.5, seed=2, backend=backend)
    assert keep.any()
    y = dropkit.dropout(x, 0.5, seed=2, inverted=False, backend=backend)
    assert_same_bits(y[keep], x[keep])
    # inverted at rate 0.5: x * 2, exact, still subnormal for the small ones
    y = dropkit.dropout(x, 0.5, seed=2, backend=backend)
    assert_same_bits(y, np.where(keep, (x.astype(ct) * ct(2.0)).astype(dtype), dtype(0)))
    small = keep & (np.abs(x) < np.finfo(dtype).smallest_normal / 4)
    assert small.any() and (y[small] != 0).all()
    # classic evaluation: a product that underflows rounds to a subnormal, not to zero
    normal = np.full(300, np.finfo(dtype).smallest_normal, dtype)
    ev = dropkit.dropout(normal, 0.75, seed=2, training=False, inverted=False, backend=backend)
    assert_same_bits(ev, (normal.astype(ct) * ct(0.25)).astype(dtype))
    assert (ev != 0).all() and (ev < np.finfo(dtype).smallest_normal).all()


# ------------------------------------------------------------------------------------------
# §5: the identity cases return the input itself
# ------------------------------------------------------------------------------------------

IDENTITY = {
    "eval-inverted rate 0.3": dict(rate=0.3, training=False),
    "eval-inverted rate 1": dict(rate=1.0, training=False),
    "train rate 0": dict(rate=0.0),
    "train-classic rate 0": dict(rate=0.0, inverted=False),
    "eval-classic rate 0": dict(rate=0.0, training=False, inverted=False),
    "backward rate 0": dict(rate=0.0, backward=True),
    "backward-classic rate 0": dict(rate=0.0, backward=True, inverted=False),
}


@pytest.mark.parametrize("case", list(IDENTITY))
@pytest.mark.parametrize("dtype", FLOATS)
def test_identity_cases_return_x_itself(backend, case, dtype):
    kw = dict(IDENTITY[case])
    rate = kw.pop("rate")
    fn = dropkit.dropout_backward if kw.pop("backward", False) else dropkit.dropout
    snan = {np.float16: 0x7C01, np.float32: 0x7F800001, np.float64: 0x7FF0000000000001}[dtype]
    x = np.arange(12, dtype=dtype).reshape(3, 4)
    x.reshape(-1).view(bits(x).dtype)[5] = snan  # a signalling NaN stays signalling
    before = bits(x).copy()
    y = fn(x, rate, seed=1, backend=backend, **kw)
    assert y is x
    np.testing.assert_array_equal(bits(x), before)
    xt = x.T  # non-contiguous input: still itself
    assert fn(xt, rate, seed=1, backend=backend, **kw) is xt
    out = np.full_like(x, 7)
    assert fn(x, rate, seed=1, out=out, backend=backend, **kw) is out
    np.testing.assert_array_equal(bits(out), before)


# ------------------------------------------------------------------------------------------
# §7: the table of bad arguments
# ------------------------------------------------------------------------------------------


def _table_rows():
    text = RNG_MD.read_text(encoding="utf-8")
    part = text.split("### Bad arguments", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in part.splitlines():
        if line.startswith("| `") or line.startswith("| layer ") or line.startswith("| `set_"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == 4, line
            rows[cells[0]] = (cells[2] != "—", cells[3] != "—")
    return rows


X3 = np.ones(3, np.float32)
_RO = np.ones(3, np.float32)
_RO.flags.writeable = False


def _misaligned3():
    raw = np.zeros(3 * 4 + 8, np.uint8)
    start = (-raw.ctypes.data) % 8 + 1
    return raw[start:start + 12].view(np.float32)


def _set(obj, attr, value):
    setattr(obj, attr, value)


L = lambda: dropkit.Dropout(0.5, seed=1)  # noqa: E731

# row -> (how the message starts: it names the argument, TypeError calls, ValueError calls)
EXAMPLES = {
    "`x`, `grad`": ("^(x|grad) must ", [
        lambda: dropkit.dropout(np.arange(3), 0.5, seed=1),
        lambda: dropkit.dropout(np.ones(3, ">f4"), 0.5, seed=1),
        lambda: dropkit.dropout(np.ones(3, complex), 0.5, seed=1),
        lambda: dropkit.dropout(np.ones(3, bool), 0.5, seed=1, training=False),
        lambda: dropkit.dropout_backward(np.arange(3), 0.5, seed=1),
    ], []),
    "`rate`, `keep_prob`": ("^(rate|keep_prob) must ", [], [
        lambda: dropkit.dropout(X3, "0.5", seed=1), lambda: dropkit.dropout(X3, None, seed=1),
        lambda: dropkit.dropout(X3, 0.5j, seed=1), lambda: dropkit.dropout(X3, True, seed=1),
        lambda: dropkit.dropout(X3, [0.5], seed=1), lambda: dropkit.dropout(X3, float("nan"), seed=1),
        lambda: dropkit.dropout(X3, 1.5, seed=1), lambda: dropkit.dropout_mask(3, -0.1, seed=1),
        lambda: dropkit.InvertedDropout(keep_prob=1.5), lambda: dropkit.Dropout(2.0),
    ]),
    "`seed`": ("^seed must ", [
        lambda: dropkit.dropout(X3, 0.5, seed=1.5), lambda: dropkit.dropout(X3, 0.5, seed="1"),
        lambda: dropkit.dropout(X3, 0.5, seed=True), lambda: dropkit.dropout_mask(3, 0.5, seed=None),
        lambda: dropkit.Dropout(0.5, seed="x"),
    ], [
        lambda: dropkit.dropout(X3, 0.5, seed=-1), lambda: dropkit.dropout(X3, 0.5, seed=TWO64),
        lambda: dropkit.Dropout(0.5, seed=TWO64),
    ]),
    "`offset`": ("^offset (must|\\+ size must) ", [
        lambda: dropkit.dropout(X3, 0.5, seed=1, offset=1.0),
        lambda: dropkit.dropout_mask(3, 0.5, seed=1, offset=None),
    ], [
        lambda: dropkit.dropout(X3, 0.5, seed=1, offset=-1),
        lambda: dropkit.dropout(X3[:0], 0.5, seed=1, offset=TWO64 + 1),
        lambda: dropkit.dropout(X3, 0.5, seed=1, offset=TWO64 - 2),
        lambda: dropkit.dropout_backward(X3, 0.5, seed=1, offset=TWO64),
    ]),
    "`training`, `inverted`, `packed`": ("^(training|inverted|packed) must be a bool", [
        lambda: dropkit.dropout(X3, 0.5, seed=1, training="False"),
        lambda: dropkit.dropout(X3, 0.5, seed=1, training=None),
        lambda: dropkit.dropout(X3, 0.5, seed=1, inverted=0),
        lambda: dropkit.dropout_mask(3, 0.5, seed=1, packed="no"),
        lambda: L().forward(X3, training="no"),
        lambda: dropkit.Dropout(0.5, inverted=1),
    ], []),
    "`out`": ("^out must ", [
        lambda: dropkit.dropout(X3, 0.5, seed=1, out=[0.0, 0.0, 0.0]),
        lambda: dropkit.dropout(X3, 0.5, seed=1, out=np.ones(3)),
    ], [
        lambda: dropkit.dropout(X3, 0.5, seed=1, out=np.ones(4, np.float32)),
        lambda: dropkit.dropout(X3, 0.5, seed=1, out=_RO),
        lambda: dropkit.dropout(X3, 0.5, seed=1, out=np.ones(6, np.float32)[::2]),
        lambda: dropkit.dropout(X3, 0.5, seed=1, out=_misaligned3()),
    ]),
    "`shape`": ("^shape must ", [
        lambda: dropkit.dropout_mask(1.5, 0.5, seed=1), lambda: dropkit.dropout_mask("ab", 0.5, seed=1),
        lambda: dropkit.dropout_mask(True, 0.5, seed=1), lambda: dropkit.dropout_mask((2, 1.0), 0.5, seed=1),
    ], [
        lambda: dropkit.dropout_mask(-1, 0.5, seed=1), lambda: dropkit.dropout_mask((2, -3), 0.5, seed=1),
    ]),
    "`backend`": ("^backend must ", [], [
        lambda: dropkit.dropout(X3, 0.5, seed=1, backend="cuda"),
        lambda: dropkit.dropout_mask(3, 0.5, seed=1, backend=3),
        lambda: dropkit.Dropout(0.5, backend="torch"),
    ]),
    "`set_num_threads(n)`": ("^the number of threads must ", [
        lambda: dropkit.set_num_threads(2.0), lambda: dropkit.set_num_threads(True),
    ], [
        lambda: dropkit.set_num_threads(0), lambda: dropkit.set_num_threads(1025),
        lambda: dropkit.set_num_threads(2**31),
    ]),
    "layer `position` (assigned)": ("^position must ", [
        lambda: _set(L(), "position", "0"), lambda: _set(L(), "position", 1.0),
    ], [
        lambda: _set(L(), "position", -1), lambda: _set(L(), "position", TWO64 + 1),
    ]),
    "layer `training`, `inverted` (assigned)": ("^(training|inverted) must be a bool", [
        lambda: _set(L(), "training", "False"), lambda: _set(L(), "inverted", 0),
    ], []),
    "`counter`, `key` (`philox4x32_10`)": ("^(counter|key) ", [
        lambda: dropkit.philox4x32_10([0.0, 0, 0, 0], [0, 0]),
        lambda: dropkit.philox4x32_10([0, 0, 0, 0], ["a", "b"]),
    ], [
        lambda: dropkit.philox4x32_10([0, 0, 0], [0, 0]),
        lambda: dropkit.philox4x32_10([0, 0, 0, TWO32], [0, 0]),
        lambda: dropkit.philox4x32_10([0, 0, 0, 0], [0, -1]),
    ]),
}


def test_error_table_rows_match_the_examples():
    rows = _table_rows()
    assert set(rows) == set(EXAMPLES)
    for row, (type_errors, value_errors) in rows.items():
        _, te, ve = EXAMPLES[row]
        assert type_errors == bool(te), row
        assert value_errors == bool(ve), row


@pytest.mark.parametrize("row", list(EXAMPLES))
def test_error_table_examples(backend, restore_runtime, row):
    dropkit.set_backend(backend)  # every entry point, on each backend (backend=None everywhere)
    names, te, ve = EXAMPLES[row]
    for exc, calls in ((TypeError, te), (ValueError, ve)):
        for call in calls:
            with pytest.raises(exc, match=names):
                call()
