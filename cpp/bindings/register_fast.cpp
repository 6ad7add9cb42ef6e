// The common dropout call in one compiled step (issue: a 16-element call at ~1.4 us, 0.3 us of
// it the kernel). `dropout_fast` takes exactly the cases that need no conversion and no message:
// an aligned, C-contiguous, native-order float16/32/64 ndarray, a Python float rate strictly
// inside (0, 1), Python int seed and offset with offset + size <= 2**64, a bool mode, and no out
// or an exactly matching one that is x or does not overlap it. Anything else returns None and
// the Python API runs its general path, which raises every error with its message. Thread count
// and SIMD target are the process settings, pushed here by dropkit._runtime when they change.
#include <Python.h>

#include <atomic>
#include <cmath>

#include "bindings/common.hpp"

namespace dropkit::py_bind {

namespace {

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

}  // namespace

void register_fast(py::module_& m) {
    m.def("_set_fast_state", [](int threads, const std::string& simd) {
        g_threads.store(parse_threads(threads));
        g_simd.store(static_cast<int>(parse_simd(simd)));
    });
    m.def("_fast_state", [] {
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
}

}  // namespace dropkit::py_bind
