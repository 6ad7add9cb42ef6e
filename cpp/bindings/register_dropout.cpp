#include "bindings/common.hpp"

namespace dropkit::py_bind {

namespace {

enum class Dtype { f16, f32, f64 };

Dtype float_dtype(const py::array& a, const char* what) {
    const py::dtype d = a.dtype();
    if (d.kind() == 'f') {
        if (d.itemsize() == 2) return Dtype::f16;
        if (d.itemsize() == 4) return Dtype::f32;
        if (d.itemsize() == 8) return Dtype::f64;
    }
    throw py::type_error(std::string(what) + " must be float16, float32 or float64, got " +
                         py::str(d).cast<std::string>());
}

}  // namespace

void register_dropout(py::module_& m) {
    m.def(
        "bernoulli_apply",
        [](const py::array& x, py::array& out, std::uint64_t threshold, double scale, std::uint64_t seed,
           std::uint64_t offset, int threads, const std::string& simd, const std::string& store) {
            const Dtype dt = float_dtype(x, "x");
            if (!out.dtype().is(x.dtype()))
                throw py::type_error("out must have x's dtype " + py::str(x.dtype()).cast<std::string>() +
                                     ", got " + py::str(out.dtype()).cast<std::string>());
            if (!c_contiguous(x)) throw py::value_error("x must be C-contiguous");
            require_writable_contiguous(out, "out");
            if (out.size() != x.size()) throw py::value_error("out must have x's size");
            if (threshold > (std::uint64_t{1} << 32)) throw py::value_error("threshold must be in [0, 2**32]");
            const auto n = static_cast<std::size_t>(x.size());
            if (n != 0 && offset + (n - 1) < offset)
                throw py::value_error("offset + size must not exceed 2**64");
            const int nt = parse_threads(threads);
            const Simd s = parse_simd(simd);
            Store st;
            if (store == "auto") st = Store::automatic;
            else if (store == "cached") st = Store::cached;
            else if (store == "streaming") st = Store::streaming;
            else throw py::value_error("store must be 'auto', 'cached' or 'streaming', got '" + store + "'");
            const void* xp = x.data();
            void* yp = out.mutable_data();
            {
            py::gil_scoped_release release;
            switch (dt) {
                case Dtype::f32:
                    bernoulli_apply(static_cast<const float*>(xp), static_cast<float*>(yp), n, threshold,
                                    static_cast<float>(scale), seed, offset, nt, s, st);
                    break;
                case Dtype::f64:
                    bernoulli_apply(static_cast<const double*>(xp), static_cast<double*>(yp), n, threshold,
                                    scale, seed, offset, nt, s, st);
                    break;
                case Dtype::f16:
                    bernoulli_apply_f16(static_cast<const std::uint16_t*>(xp), static_cast<std::uint16_t*>(yp), n,
                                        threshold, static_cast<float>(scale), seed, offset, nt, s, st);
                    break;
            }
            }
            return out;
        },
        py::arg("x"), py::arg("out"), py::arg("threshold"), py::arg("scale"), py::arg("seed"),
        py::arg("offset"), py::arg("threads") = -1, py::arg("simd") = "", py::arg("store") = "auto",
        "out[i] = x[i] * scale if u(seed, offset + i) >= threshold else +0 (docs/rng.md). "
        "x and out: C-contiguous, same float dtype and size; out may be x. scale is rounded to "
        "float32 for float16/float32 arrays. store: 'auto' (streaming stores for outputs of at "
        "least STREAMING_THRESHOLD_BYTES), 'cached' or 'streaming'; the bits are the same.");

    m.def(
        "bernoulli_mask",
        [](py::array& out, std::size_t n, std::uint64_t threshold, std::uint64_t seed, std::uint64_t offset,
           bool packed, int threads, const std::string& simd) {
            if (out.itemsize() != 1 || (out.dtype().kind() != 'u' && out.dtype().kind() != 'b'))
                throw py::type_error("out must be a uint8 or bool array");
            require_writable_contiguous(out, "out");
            const std::size_t need = packed ? (n + 7) / 8 : n;
            if (static_cast<std::size_t>(out.size()) != need)
                throw py::value_error("out must have " + std::to_string(need) + " elements");
            if (threshold > (std::uint64_t{1} << 32)) throw py::value_error("threshold must be in [0, 2**32]");
            if (n != 0 && offset + (n - 1) < offset)
                throw py::value_error("offset + size must not exceed 2**64");
            const int nt = parse_threads(threads);
            const Simd s = parse_simd(simd);
            auto* o = static_cast<std::uint8_t*>(out.mutable_data());
            {
                py::gil_scoped_release release;
                bernoulli_mask(o, n, packed, threshold, seed, offset, nt, s);
            }
            return out;
        },
        py::arg("out"), py::arg("n"), py::arg("threshold"), py::arg("seed"), py::arg("offset"),
        py::arg("packed"), py::arg("threads") = -1, py::arg("simd") = "",
        "The keep mask of positions offset .. offset+n-1: n bytes in {0, 1}, or packed in "
        "numpy.packbits order (ceil(n/8) bytes).");
}

}  // namespace dropkit::py_bind
