// Helpers shared by the register_* files: argument conversion for the thin bindings.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "core/dropkit.hpp"

namespace dropkit::py_bind {

namespace py = pybind11;

// "" means the widest available target.
inline Simd parse_simd(const std::string& name) {
    Simd s;
    if (name.empty()) return simd_best();
    if (name == "scalar") s = Simd::scalar;
    else if (name == "avx2") s = Simd::avx2;
    else if (name == "avx512") s = Simd::avx512;
    else throw py::value_error("unknown SIMD target '" + name + "' (expected scalar, avx2 or avx512)");
    if (!simd_available(s)) throw py::value_error("SIMD target '" + name + "' is not available on this CPU or build");
    return s;
}

inline int parse_threads(int threads) {
    if (threads == 0 || threads < -1) throw py::value_error("threads must be >= 1 (or -1 for the default), got " + std::to_string(threads));
    return threads == -1 ? default_threads() : threads;
}

inline bool c_contiguous(const py::array& a) {
    return (a.flags() & py::array::c_style) != 0;
}

inline void require_writable_contiguous(const py::array& a, const char* what) {
    if (!c_contiguous(a)) throw py::value_error(std::string(what) + " must be C-contiguous");
    if (!a.writeable()) throw py::value_error(std::string(what) + " must be writable");
}

// f(x, y) with the data of x and y as float, double or float16 bits (std::uint16_t), by the
// element size, with the GIL released: the one dtype switch of the bindings (the core names its
// float16 entries like the others, core/dropkit.hpp).
template <class F>
void with_dtype(py::ssize_t itemsize, const void* xp, void* yp, F&& f) {
    py::gil_scoped_release release;
    if (itemsize == 4) f(static_cast<const float*>(xp), static_cast<float*>(yp));
    else if (itemsize == 8) f(static_cast<const double*>(xp), static_cast<double*>(yp));
    else f(static_cast<const std::uint16_t*>(xp), static_cast<std::uint16_t*>(yp));
}

void register_philox(py::module_& m);
void register_dropout(py::module_& m);
void register_runtime(py::module_& m);
void register_variants(py::module_& m);
void register_fast(py::module_& m);
void register_dropblock(py::module_& m);

}  // namespace dropkit::py_bind
