// The common call of every variant in one compiled step. `dropout_fast` takes exactly the cases that need no conversion and no message:
// an aligned, C-contiguous, native-order float16/32/64 ndarray, a Python float rate strictly
// inside (0, 1), Python int seed and offset with offset + size <= 2**64, a bool mode, and no out
// or an exactly matching one that is x or does not overlap it. Anything else returns None and
// the Python API runs its general path, which raises every error with its message. Thread count
// and SIMD target are the process settings, pushed here by dropkit._runtime when they change.
#include <Python.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "bindings/common.hpp"

namespace dropkit::py_bind {

namespace {

// The variants of the compiled fast path (variant_fast's `kind`); dropkit/_registry.py names them.
enum class FastKind : int {
    bernoulli = 0, gaussian = 1, alpha = 2, alpha_grad = 3, feature_alpha = 4, feature_alpha_grad = 5, gaussian_noise = 6
};

std::atomic<int> g_threads{1};
std::atomic<int> g_simd{static_cast<int>(Simd::scalar)};

// NumPy type numbers (stable ABI values): NPY_HALF 23, NPY_FLOAT 11, NPY_DOUBLE 12.
constexpr int kNpyHalf = 23, kNpyFloat = 11, kNpyDouble = 12;

bool as_u64(PyObject* o, std::uint64_t& v) {
    if (!PyLong_CheckExact(o)) return false;
    const unsigned long long u = PyLong_AsUnsignedLongLong(o);
    if (u == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {  // negative or >= 2**64
        PyErr_Clear();
        return false;
    }
    v = u;
    return true;
}

// x and out fully checked; returns the type number, or 0 when the call is not a fast one.
int fast_array(const py::handle& h) {
    if (!py::isinstance<py::array>(h)) return 0;
    const auto a = py::reinterpret_borrow<py::array>(h);
    const py::dtype d = a.dtype();
    const int num = d.num();
    if (num != kNpyHalf && num != kNpyFloat && num != kNpyDouble) return 0;
    if (d.byteorder() == '>') return 0;
    if ((a.flags() & py::array::c_style) == 0) return 0;
    if (reinterpret_cast<std::uintptr_t>(a.data()) % static_cast<std::uintptr_t>(d.itemsize()) != 0) return 0;
    return num;
}

// `out` for a fast call: None (a new array like x), or an exactly matching array that is x or does
// not overlap it. Returns false when the call is not a fast one.
bool fast_out(const py::array& xa, int num, const py::handle& out, py::array& ya) {
    if (out.is_none()) {
        ya = py::array(xa.dtype(), std::vector<py::ssize_t>(xa.shape(), xa.shape() + xa.ndim()));
        return true;
    }
    if (fast_array(out) != num) return false;
    ya = py::reinterpret_borrow<py::array>(out);
    if (!ya.writeable() || ya.ndim() != xa.ndim() || !std::equal(xa.shape(), xa.shape() + xa.ndim(), ya.shape()))
        return false;
    const auto* xb = static_cast<const char*>(xa.data());
    const auto* yb = static_cast<const char*>(ya.data());
    const std::size_t bytes = static_cast<std::size_t>(xa.size()) * static_cast<std::size_t>(xa.itemsize());
    return xb == yb || !(xb < yb + bytes && yb < xb + bytes);  // in place, or no overlap at all
}

// The position map of docs/rng.md section 8.1 for x's shape and a Keras noise_shape: None (C order
// of x), a tuple or list of Python ints or None, each entry 1 or the axis's size; the feature map
// (N, C, 1, ..., 1) of feature-alpha dropout when `feature` is set. Fills shape and position
// strides and the number of noise positions; false when the call is not a fast one (the general
// path then raises the right error).
bool fast_positions(const py::array& xa, const py::handle& noise_shape, bool feature, std::vector<std::int64_t>& shape,
                    std::vector<std::uint64_t>& ps, unsigned __int128& noise_size) {
    const auto nd = static_cast<std::size_t>(xa.ndim());
    if (feature && (nd < 2 || !noise_shape.is_none())) return false;
    shape.resize(nd);
    ps.resize(nd);
    std::vector<std::int64_t> ns(nd);
    PyObject* seq = noise_shape.ptr();
    const bool given = !noise_shape.is_none();
    if (given) {
        if (!PyTuple_CheckExact(seq) && !PyList_CheckExact(seq)) return false;
        if (static_cast<std::size_t>(PySequence_Fast_GET_SIZE(seq)) != nd) return false;
    }
    for (std::size_t d = 0; d < nd; ++d) {
        shape[d] = xa.shape(static_cast<py::ssize_t>(d));
        if (shape[d] == 0) return false;  // empty: the general path (it touches no position)
        ns[d] = feature && d >= 2 ? 1 : shape[d];
        if (given) {
            PyObject* e = PySequence_Fast_GET_ITEM(seq, static_cast<py::ssize_t>(d));
            if (e == Py_None) continue;
            if (!PyLong_CheckExact(e)) return false;
            const long long v = PyLong_AsLongLong(e);
            if (v == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                return false;
            }
            if (v != 1 && v != shape[d]) return false;
            ns[d] = v;
        }
    }
    unsigned __int128 acc = 1;
    for (std::size_t d = nd; d-- > 0;) {
        ps[d] = ns[d] == 1 ? 0 : static_cast<std::uint64_t>(acc);
        acc *= static_cast<unsigned __int128>(ns[d]);
    }
    noise_size = acc;
    return true;
}

// The common tail of variant_fast and concrete_fast: seed and offset as Python ints, x and out
// fast arrays, the position map (noise_shape, or the feature map), the span below 2**64; then one
// engine call with the GIL released. None when any of it is not a fast call.
py::object engine_fast(py::handle x, py::handle seed, py::handle offset, py::handle noise_shape, bool feature,
                       const NoiseSpec& noise, const OpSpec& op, py::handle out) {
    std::uint64_t s, o;
    if (!as_u64(seed.ptr(), s) || !as_u64(offset.ptr(), o)) return py::none();
    const int num = fast_array(x);
    if (num == 0) return py::none();
    const auto xa = py::reinterpret_borrow<py::array>(x);
    std::vector<std::int64_t> shape;
    std::vector<std::uint64_t> ps;
    unsigned __int128 count;
    if (!fast_positions(xa, noise_shape, feature, shape, ps, count)) return py::none();
    if (static_cast<unsigned __int128>(o) + count > (static_cast<unsigned __int128>(1) << 64)) return py::none();
    py::array ya;
    if (!fast_out(xa, num, out, ya)) return py::none();
    const int nt = g_threads.load(std::memory_order_relaxed);
    const auto sm = static_cast<Simd>(g_simd.load(std::memory_order_relaxed));
    const int nd = static_cast<int>(shape.size());
    with_dtype(xa.itemsize(), xa.data(), ya.mutable_data(), [&](const auto* xp, auto* yp) {
        engine_apply(xp, yp, shape.data(), ps.data(), nd, o, noise, op, s, nt, sm);
    });
    return std::move(ya);
}

// The per-call constants of a variant from its parameter (a rate; Gaussian noise: a standard
// deviation), by the operation sequences of docs/rng.md sections 4, 5, 12 and 14 in binary64 (the
// same as dropkit/_params.py computes). Returns false when the parameter is not one the fast path
// takes (rate 0 or 1 and anything invalid: the general path's business).
bool variant_spec(int kind, double r, NoiseSpec& noise, OpSpec& op) {
    constexpr double kAlphaPrime = -1.7580993408473766;
    if (static_cast<FastKind>(kind) == FastKind::gaussian_noise) {
        if (!(r > 0.0 && r <= static_cast<double>(std::numeric_limits<float>::max()))) return false;
        noise = NoiseSpec{true, 0, ContinuousNoise{ContinuousKind::normal, static_cast<float>(r), 0, 0}};
        op = OpSpec{OpKind::add, 0, 0, 0};
        return true;
    }
    if (!(r > 0.0 && r < 1.0)) return false;
    const std::uint64_t t = static_cast<std::uint64_t>(std::nearbyint(r * 4294967296.0));
    switch (static_cast<FastKind>(kind)) {
        case FastKind::gaussian_noise: return false;  // (above)
        case FastKind::bernoulli:
            noise = NoiseSpec{false, t, {}};
            op = OpSpec{OpKind::scale, 1.0 / (1.0 - r), 0, 0};
            return true;
        case FastKind::gaussian:
            noise = NoiseSpec{true, 0, ContinuousNoise{ContinuousKind::gaussian, static_cast<float>(std::sqrt(r / (1.0 - r))), 0, 0}};
            op = OpSpec{OpKind::multiply, 0, 0, 0};
            return true;
        case FastKind::alpha:
        case FastKind::alpha_grad:
        case FastKind::feature_alpha:
        case FastKind::feature_alpha_grad: {
            const double a = 1.0 / std::sqrt((1.0 - r) * (1.0 + r * (kAlphaPrime * kAlphaPrime)));
            const double b = -((a * kAlphaPrime) * r);
            noise = NoiseSpec{false, t, {}};
            const auto k = static_cast<FastKind>(kind);
            if (k == FastKind::alpha_grad || k == FastKind::feature_alpha_grad) op = OpSpec{OpKind::scale, a, 0, 0};
            else op = OpSpec{OpKind::affine, a, b, a * kAlphaPrime + b};
            return true;
        }
    }
    return false;
}

}  // namespace

void register_fast(py::module_& m) {
    m.def("set_fast_state", [](int threads, const std::string& simd) {
        g_threads.store(parse_threads(threads));
        g_simd.store(static_cast<int>(parse_simd(simd)));
    });
    m.def("fast_state", [] {
        return py::make_tuple(g_threads.load(), std::string(simd_name(static_cast<Simd>(g_simd.load()))));
    }, "(threads, SIMD target) the compiled fast path uses: dropkit's settings, pushed by _runtime.");
    m.def(
        "dropout_fast",
        [](py::handle x, py::handle rate, py::handle seed, py::handle offset, py::handle training,
           py::handle inverted, py::handle out) -> py::object {
            if (!PyFloat_CheckExact(rate.ptr()) || !PyBool_Check(training.ptr()) || !PyBool_Check(inverted.ptr()))
                return py::none();
            const double r = PyFloat_AS_DOUBLE(rate.ptr());
            if (!(r > 0.0 && r < 1.0)) return py::none();
            std::uint64_t s, o;
            if (!as_u64(seed.ptr(), s) || !as_u64(offset.ptr(), o)) return py::none();
            const int num = fast_array(x);
            if (num == 0) return py::none();
            const auto xa = py::reinterpret_borrow<py::array>(x);
            const auto n = static_cast<std::size_t>(xa.size());
            if (n != 0 && o + (n - 1) < o) return py::none();
            const bool train = training.ptr() == Py_True, inv = inverted.ptr() == Py_True;
            if (!train && inv) return py::none();  // the identity: Python returns x itself
            py::array ya;
            if (out.is_none()) {
                ya = py::array(xa.dtype(), std::vector<py::ssize_t>(xa.shape(), xa.shape() + xa.ndim()));
            } else {
                if (fast_array(out) != num) return py::none();
                ya = py::reinterpret_borrow<py::array>(out);
                if (!ya.writeable() || ya.ndim() != xa.ndim() ||
                    !std::equal(xa.shape(), xa.shape() + xa.ndim(), ya.shape()))
                    return py::none();
                const auto* xb = static_cast<const char*>(xa.data());
                const auto* yb = static_cast<const char*>(ya.data());
                const std::size_t bytes = n * static_cast<std::size_t>(xa.itemsize());
                if (xb != yb && xb < yb + bytes && yb < xb + bytes) return py::none();  // partial overlap
            }
            // docs/rng.md sections 4 and 5: t = round-half-even(rate * 2**32) (exact product), the
            // scale in binary64 rounded once to the compute type by the kernel entry.
            std::uint64_t t;
            double scale;
            if (train) {
                t = static_cast<std::uint64_t>(std::nearbyint(r * 4294967296.0));
                scale = inv ? 1.0 / (1.0 - r) : 1.0;
            } else {  // classic evaluation: everything kept, times (1 - rate)
                t = 0;
                scale = 1.0 - r;
            }
            const int nt = g_threads.load(std::memory_order_relaxed);
            const auto sm = static_cast<Simd>(g_simd.load(std::memory_order_relaxed));
            const void* xp = xa.data();
            void* yp = ya.mutable_data();
            {
                py::gil_scoped_release release;
                if (num == kNpyFloat)
                    bernoulli_apply(static_cast<const float*>(xp), static_cast<float*>(yp), n, t,
                                    static_cast<float>(scale), s, o, nt, sm);
                else if (num == kNpyDouble)
                    bernoulli_apply(static_cast<const double*>(xp), static_cast<double*>(yp), n, t, scale, s, o, nt, sm);
                else
                    bernoulli_apply_f16(static_cast<const std::uint16_t*>(xp), static_cast<std::uint16_t*>(yp), n, t,
                                        static_cast<float>(scale), s, o, nt, sm);
            }
            return std::move(ya);
        },
        "The common dropout call, or None (see the file's comment).");
    m.def(
        "variant_fast",
        [](int kind, py::handle x, py::handle rate, py::handle seed, py::handle offset, py::handle noise_shape,
           py::handle out) -> py::object {
            // The common call of every variant with a scalar rate in training mode, checked as
            // dropout_fast checks (see the file's comment); None when it is not such a call.
            if (!PyFloat_CheckExact(rate.ptr())) return py::none();
            NoiseSpec noise{};
            OpSpec op{};
            if (kind < 0 || kind > static_cast<int>(FastKind::gaussian_noise))
                throw py::value_error("unknown fast variant kind " + std::to_string(kind));
            if (!variant_spec(kind, PyFloat_AS_DOUBLE(rate.ptr()), noise, op)) return py::none();
            const auto k = static_cast<FastKind>(kind);
            const bool feature = k == FastKind::feature_alpha || k == FastKind::feature_alpha_grad;
            return engine_fast(x, seed, offset, noise_shape, feature, noise, op, out);
        },
        "The common training call of a variant (kind: dropkit/_registry.py), or None.");
    m.def(
        "rates_fast",
        [](py::handle x, py::handle rate, py::handle seed, py::handle offset, py::handle noise_shape,
           py::handle out) -> py::object {
            // Inverted training dropout with a float64 rate array broadcastable to x (docs/rng.md
            // section 9): thresholds and scales made here from the rate array's own elements
            // (t = round-half-even(rate * 2**32); scale 1 / (1 - rate), 0 at rate 1, rounded once
            // to the compute type), read by the core through broadcast strides. None when the call
            // is not such a one (every error then comes from the general path).
            if (!py::isinstance<py::array>(rate)) return py::none();
            const auto ra = py::reinterpret_borrow<py::array>(rate);
            if (ra.ndim() == 0 || ra.dtype().num() != kNpyDouble || ra.dtype().byteorder() == '>') return py::none();
            std::uint64_t s, o;
            if (!as_u64(seed.ptr(), s) || !as_u64(offset.ptr(), o)) return py::none();
            const int num = fast_array(x);
            if (num == 0) return py::none();
            const auto xa = py::reinterpret_borrow<py::array>(x);
            if (ra.ndim() > xa.ndim() || xa.ndim() > kMaxRateDims) return py::none();
            if (reinterpret_cast<std::uintptr_t>(ra.data()) % alignof(double) != 0) return py::none();
            std::vector<std::int64_t> shape;
            std::vector<std::uint64_t> ps;
            unsigned __int128 count;
            if (!fast_positions(xa, noise_shape, false, shape, ps, count)) return py::none();
            if (static_cast<unsigned __int128>(o) + count > (static_cast<unsigned __int128>(1) << 64)) return py::none();
            // The rate array's elements in C order, checked, and their thresholds and scales. The
            // calling thread keeps those of its last call with their C-contiguous rates as the key
            // (compared in full), so a forward and its backward, or the steps between two rate
            // updates, convert the rates once.
            const auto rn = static_cast<std::size_t>(ra.size());
            const int rnd = static_cast<int>(ra.ndim());
            thread_local std::vector<double> key_rates;
            thread_local int key_num = 0;
            thread_local std::vector<std::uint64_t> tv;
            thread_local std::vector<double> sv;
            thread_local bool key_nonzero = false;
            const bool contiguous = (ra.flags() & py::array::c_style) != 0;
            const auto* rates = static_cast<const double*>(ra.data());
            bool any_nonzero = false;
            if (contiguous && key_num == num && key_rates.size() == rn &&
                std::memcmp(key_rates.data(), rates, rn * sizeof(double)) == 0) {
                any_nonzero = key_nonzero;
            } else {
                key_rates.clear();  // (no key while tv and sv are rewritten: an early return leaves none)
                tv.resize(rn);
                sv.resize(rn);
                // the multi-index over the rate array, its byte offset stepped axis by axis
                py::ssize_t rshape[kMaxRateDims], rstride[kMaxRateDims], idx[kMaxRateDims] = {};
                for (int d = 0; d < rnd; ++d) {
                    rshape[d] = ra.shape(d);
                    rstride[d] = ra.strides(d);
                }
                const auto* base = static_cast<const char*>(ra.data());
                const bool f64 = num == kNpyDouble;
                py::ssize_t off = 0;
                for (std::size_t i = 0; i < rn; ++i) {
                    double v;
                    std::memcpy(&v, base + off, sizeof v);
                    if (!(v >= 0.0 && v <= 1.0)) return py::none();
                    any_nonzero |= v != 0.0;
                    tv[i] = static_cast<std::uint64_t>(std::nearbyint(v * 4294967296.0));
                    const double sc = v == 1.0 ? 0.0 : 1.0 / (1.0 - v);
                    sv[i] = f64 ? sc : static_cast<double>(static_cast<float>(sc));
                    for (int d = rnd; d-- > 0;) {
                        off += rstride[d];
                        if (++idx[d] < rshape[d]) break;
                        off -= idx[d] * rstride[d];
                        idx[d] = 0;
                    }
                }
                if (contiguous) {
                    key_rates.assign(rates, rates + rn);
                    key_num = num;
                    key_nonzero = any_nonzero;
                }
            }
            if (!any_nonzero) return py::none();  // the identity: Python returns x itself
            // Broadcast strides (in elements of tv/sv, C order of the rate array) against x's shape.
            const int nd = static_cast<int>(shape.size());
            std::vector<std::int64_t> bs(static_cast<std::size_t>(nd), 0);
            {
                std::int64_t acc = 1;
                for (int d = rnd; d-- > 0;) {
                    const int xd = nd - rnd + d;
                    const auto len = static_cast<std::int64_t>(ra.shape(d));
                    if (len != 1 && len != shape[static_cast<std::size_t>(xd)]) return py::none();
                    bs[static_cast<std::size_t>(xd)] = len == 1 ? 0 : acc;
                    acc *= len;
                }
            }
            py::array ya;
            if (!fast_out(xa, num, out, ya)) return py::none();
            const RateArrays rr{nd, shape.data(), tv.data(), bs.data(), sv.data(), bs.data()};
            const int nt = g_threads.load(std::memory_order_relaxed);
            const auto sm = static_cast<Simd>(g_simd.load(std::memory_order_relaxed));
            with_dtype(xa.itemsize(), xa.data(), ya.mutable_data(), [&](const auto* xp, auto* yp) {
                rates_apply_nd(xp, yp, shape.data(), ps.data(), nd, o, rr, s, nt, sm);
            });
            return std::move(ya);
        },
        "Inverted training dropout with a rate array, or None.");
    m.def(
        "noise_count",
        [](py::handle shape, py::handle noise_shape) -> py::object {
            // prod(noise_shape) for a tuple of non-negative Python ints `shape` and a noise_shape of
            // section 8.1 (None, or a tuple or list of ints or None, each 1 or the axis's size);
            // None for anything else (the Python function then checks and raises).
            if (!PyTuple_CheckExact(shape.ptr())) return py::none();
            const Py_ssize_t nd = PyTuple_GET_SIZE(shape.ptr());
            PyObject* ns = noise_shape.ptr();
            const bool given = ns != Py_None;
            if (given && ((!PyTuple_CheckExact(ns) && !PyList_CheckExact(ns)) || PySequence_Fast_GET_SIZE(ns) != nd))
                return py::none();
            unsigned __int128 n = 1;
            for (Py_ssize_t d = 0; d < nd; ++d) {
                PyObject* e = PyTuple_GET_ITEM(shape.ptr(), d);
                if (!PyLong_CheckExact(e)) return py::none();
                const long long s = PyLong_AsLongLong(e);
                if (s < 0 || (s == -1 && PyErr_Occurred())) {
                    PyErr_Clear();
                    return py::none();
                }
                long long v = s;
                if (given) {
                    PyObject* f = PySequence_Fast_GET_ITEM(ns, d);
                    if (f != Py_None) {
                        if (!PyLong_CheckExact(f)) return py::none();
                        v = PyLong_AsLongLong(f);
                        if (v == -1 && PyErr_Occurred()) {
                            PyErr_Clear();
                            return py::none();
                        }
                        if (v != 1 && v != s) return py::none();
                    }
                }
                n *= static_cast<unsigned long long>(v);
                if (n >= (static_cast<unsigned __int128>(1) << 64)) return py::none();  // (the general path's)
            }
            return py::reinterpret_steal<py::object>(PyLong_FromUnsignedLongLong(static_cast<unsigned long long>(n)));
        },
        "prod(noise_shape) (docs/rng.md 8.1) for a plain shape tuple, or None.");
    m.def(
        "concrete_fast",
        [](py::handle x, py::handle logit, py::handle temperature, py::handle seed, py::handle offset,
           py::handle out) -> py::object {
            // Concrete dropout's training forward with Python float logit and temperature inside
            // the admissible ranges of docs/rng.md 13.1 (the constants by dropkit/_params.py's
            // sequence: binary64, glibc's exp as Python's math.exp), or None.
            if (!PyFloat_CheckExact(logit.ptr()) || !PyFloat_CheckExact(temperature.ptr())) return py::none();
            const double lg = PyFloat_AS_DOUBLE(logit.ptr()), temp = PyFloat_AS_DOUBLE(temperature.ptr());
            constexpr double f32_max = static_cast<double>(std::numeric_limits<float>::max());
            if (!(temp > 0.0) || !(std::fabs(lg) <= f32_max)) return py::none();
            const double inv_t = 1.0 / temp;
            if (!(inv_t <= f32_max)) return py::none();
            const double p = lg > -700.0 ? 1.0 / (1.0 + std::exp(-lg)) : 0.0;
            if (!(p < 1.0)) return py::none();
            const NoiseSpec noise{true, 0, ContinuousNoise{ContinuousKind::concrete, static_cast<float>(lg),
                                                           static_cast<float>(inv_t), static_cast<float>(1.0 / (1.0 - p))}};
            const OpSpec op{OpKind::multiply, 0, 0, 0};
            return engine_fast(x, seed, offset, py::none(), false, noise, op, out);
        },
        "Concrete dropout's common training call, or None.");
}

}  // namespace dropkit::py_bind
