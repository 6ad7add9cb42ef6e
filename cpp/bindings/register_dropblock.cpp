// dropkit._core.drop_block_apply: DropBlock (docs/rng.md section 17), the twin of
// dropkit.reference._blocks.drop_block_apply (same arguments, same bits).
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bindings/common.hpp"

namespace dropkit {

// cpp/core/dropblock.cpp (declared here to keep dropkit.hpp untouched by this addition).
struct DropBlockShape {
    std::int64_t n, c;
    std::int64_t s[3];
    std::int64_t k[3];
    bool batchwise, channels_last;
};
void drop_block_apply(const float* x, float* y, const DropBlockShape& g, std::uint64_t t, std::uint64_t seed,
                      std::uint64_t offset, int threads, Simd simd);
void drop_block_apply(const double* x, double* y, const DropBlockShape& g, std::uint64_t t, std::uint64_t seed,
                      std::uint64_t offset, int threads, Simd simd);
void drop_block_apply_f16(const std::uint16_t* x, std::uint16_t* y, const DropBlockShape& g, std::uint64_t t,
                          std::uint64_t seed, std::uint64_t offset, int threads, Simd simd);
inline void drop_block_apply(const std::uint16_t* x, std::uint16_t* y, const DropBlockShape& g, std::uint64_t t,
                             std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    drop_block_apply_f16(x, y, g, t, seed, offset, threads, simd);
}

namespace py_bind {

void register_dropblock(py::module_& m) {
    m.def(
        "drop_block_apply",
        [](const py::array& x, py::array& out, std::uint64_t threshold, const std::vector<std::int64_t>& k,
           std::uint64_t seed, std::uint64_t offset, bool batchwise, bool channels_last, int threads,
           const std::string& simd) {
            const py::dtype d = x.dtype();
            if (d.kind() != 'f' || (d.itemsize() != 2 && d.itemsize() != 4 && d.itemsize() != 8))
                throw py::type_error("x must be float16, float32 or float64, got " + py::str(d).cast<std::string>());
            if (!out.dtype().is(d)) throw py::type_error("out must have x's dtype");
            if (!c_contiguous(x)) throw py::value_error("x must be C-contiguous");
            require_writable_contiguous(out, "out");
            const auto nd = static_cast<int>(x.ndim());
            if (nd < 3 || nd > 5) throw py::value_error("x must have 3 to 5 dimensions (1 to 3 spatial axes)");
            if (out.ndim() != nd) throw py::value_error("out must have x's shape");
            for (int i = 0; i < nd; ++i)
                if (out.shape(i) != x.shape(i)) throw py::value_error("out must have x's shape");
            const int dims = nd - 2;
            if (static_cast<int>(k.size()) != dims) throw py::value_error("k must have one entry per spatial axis");
            if (threshold > (std::uint64_t{1} << 32)) throw py::value_error("threshold must be in [0, 2**32]");
            DropBlockShape g{};
            g.n = x.shape(0);
            g.c = channels_last ? x.shape(nd - 1) : x.shape(1);
            g.batchwise = batchwise;
            g.channels_last = channels_last;
            for (int i = 0; i < 3; ++i) {
                g.s[i] = 1;
                g.k[i] = 1;
            }
            std::uint64_t total = static_cast<std::uint64_t>(batchwise ? 1 : g.n) * static_cast<std::uint64_t>(g.c);
            for (int i = 0; i < dims; ++i) {
                const std::int64_t s = x.shape(channels_last ? 1 + i : 2 + i);
                if (k[static_cast<std::size_t>(i)] < 1 || k[static_cast<std::size_t>(i)] > s)
                    throw py::value_error("k must be clipped block sizes in [1, axis size]");
                g.s[3 - dims + i] = s;
                g.k[3 - dims + i] = k[static_cast<std::size_t>(i)];
                total *= static_cast<std::uint64_t>(s);
            }
            if (total != 0 && offset + (total - 1) < offset)
                throw py::value_error("offset + noise size must not exceed 2**64");
            const int nt = parse_threads(threads);
            const Simd sm = parse_simd(simd);
            with_dtype(d.itemsize(), x.data(), out.mutable_data(), [&](const auto* xp, auto* yp) {
                drop_block_apply(xp, yp, g, threshold, seed, offset, nt, sm);
            });
            return out;
        },
        py::arg("x"), py::arg("out"), py::arg("threshold"), py::arg("k"), py::arg("seed"), py::arg("offset"),
        py::arg("batchwise"), py::arg("channels_last"), py::arg("threads") = -1, py::arg("simd") = "",
        "DropBlock of x (N, C, S...) or (N, S..., C), 1 to 3 spatial axes, into out (may be x): seeds "
        "u(offset + j) < threshold at the valid centres of the (N', C, S...) noise, their k-blocks "
        "dropped (+0), kept values times T / kept (docs/rng.md section 17).");
}

}  // namespace py_bind
}  // namespace dropkit
