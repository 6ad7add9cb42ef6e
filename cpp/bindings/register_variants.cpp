// Bindings of the variant kernels (docs/rng.md sections 8-14). Every one has the signature of its
// NumPy twin in dropkit.reference._variants and goes through one validating driver
// (call_engine) into the one engine of the core (engine.cpp).
#include <limits>
#include <vector>

#include "bindings/common.hpp"

namespace dropkit::py_bind {

namespace {

// Position strides: None (C order of x) or a sequence of non-negative integers, one per axis.
std::vector<std::uint64_t> parse_pstrides(const py::object& pstrides, const py::array& x) {
    const auto nd = static_cast<std::size_t>(x.ndim());
    std::vector<std::uint64_t> ps(nd);
    if (pstrides.is_none()) {
        std::uint64_t s = 1;
        for (std::size_t d = nd; d-- > 0;) {
            ps[d] = s;
            s *= static_cast<std::uint64_t>(x.shape(static_cast<py::ssize_t>(d)));
        }
        return ps;
    }
    const auto seq = py::reinterpret_borrow<py::sequence>(pstrides);
    if (seq.size() != nd)
        throw py::value_error("pstrides must have one entry per axis of x (" + std::to_string(nd) + "), got " +
                              std::to_string(seq.size()));
    for (std::size_t d = 0; d < nd; ++d) ps[d] = seq[d].cast<std::uint64_t>();
    return ps;
}

py::array call_engine(const py::array& x, py::array& out, const py::object& pstrides, std::uint64_t offset,
                      const NoiseSpec& noise, const OpSpec& op, std::uint64_t seed, int threads,
                      const std::string& simd) {
    const py::dtype d = x.dtype();
    if (d.kind() != 'f' || (d.itemsize() != 2 && d.itemsize() != 4 && d.itemsize() != 8))
        throw py::type_error("x must be float16, float32 or float64, got " + py::str(d).cast<std::string>());
    if (!out.dtype().is(d))
        throw py::type_error("out must have x's dtype " + py::str(d).cast<std::string>() + ", got " +
                             py::str(out.dtype()).cast<std::string>());
    if (!c_contiguous(x)) throw py::value_error("x must be C-contiguous");
    require_writable_contiguous(out, "out");
    if (out.ndim() != x.ndim() || !std::equal(x.shape(), x.shape() + x.ndim(), out.shape()))
        throw py::value_error("out must have x's shape");
    if (reinterpret_cast<std::uintptr_t>(x.data()) % static_cast<std::uintptr_t>(d.itemsize()) != 0 ||
        reinterpret_cast<std::uintptr_t>(out.data()) % static_cast<std::uintptr_t>(d.itemsize()) != 0)
        throw py::value_error("x and out must be aligned for their dtype");
    const std::vector<std::uint64_t> ps = parse_pstrides(pstrides, x);
    std::vector<std::int64_t> shape(static_cast<std::size_t>(x.ndim()));
    unsigned __int128 last = offset;
    bool empty = false;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        shape[i] = x.shape(static_cast<py::ssize_t>(i));
        if (shape[i] == 0) empty = true;
        else last += static_cast<unsigned __int128>(shape[i] - 1) * ps[i];
    }
    if (!empty && last > std::numeric_limits<std::uint64_t>::max())
        throw py::value_error("every position must be below 2**64 (offset + sum((shape - 1) * pstrides))");
    const int nt = parse_threads(threads);
    const Simd s = parse_simd(simd);
    const void* xp = x.data();
    void* yp = out.mutable_data();
    const int nd = static_cast<int>(shape.size());
    {
        py::gil_scoped_release release;
        if (d.itemsize() == 4)
            engine_apply(static_cast<const float*>(xp), static_cast<float*>(yp), shape.data(), ps.data(), nd, offset,
                         noise, op, seed, nt, s);
        else if (d.itemsize() == 8)
            engine_apply(static_cast<const double*>(xp), static_cast<double*>(yp), shape.data(), ps.data(), nd,
                         offset, noise, op, seed, nt, s);
        else
            engine_apply_f16(static_cast<const std::uint16_t*>(xp), static_cast<std::uint16_t*>(yp), shape.data(),
                             ps.data(), nd, offset, noise, op, seed, nt, s);
    }
    return out;
}

std::uint64_t scalar_threshold(const py::object& threshold) {
    if (py::isinstance<py::array>(threshold) && py::reinterpret_borrow<py::array>(threshold).ndim() != 0)
        throw py::type_error("the core takes one threshold per call; rate arrays run on the NumPy reference");
    const auto t = threshold.cast<std::uint64_t>();
    if (t > (std::uint64_t{1} << 32)) throw py::value_error("threshold must be in [0, 2**32], got " + std::to_string(t));
    return t;
}

double scalar_scale(const py::object& scale) {
    if (py::isinstance<py::array>(scale) && py::reinterpret_borrow<py::array>(scale).ndim() != 0)
        throw py::type_error("the core takes one scale per call; rate arrays run on the NumPy reference");
    return scale.cast<double>();
}

}  // namespace

void register_variants(py::module_& m) {
    m.def(
        "bernoulli_apply_nd",
        [](const py::array& x, py::array& out, const py::object& threshold, const py::object& scale,
           std::uint64_t seed, std::uint64_t offset, const py::object& pstrides, int threads, const std::string& simd) {
            const NoiseSpec noise{false, scalar_threshold(threshold), {}};
            return call_engine(x, out, pstrides, offset, noise, OpSpec{OpKind::scale, scalar_scale(scale), 0, 0}, seed,
                               threads, simd);
        },
        py::arg("x"), py::arg("out"), py::arg("threshold"), py::arg("scale"), py::arg("seed"), py::arg("offset"),
        py::arg("pstrides") = py::none(), py::arg("threads") = -1, py::arg("simd") = "",
        "Bernoulli dropout with the position map of docs/rng.md section 8: out = x * scale where "
        "u(pos) >= threshold, +0 elsewhere. One scalar threshold and scale.");
    m.def(
        "alpha_apply",
        [](const py::array& x, py::array& out, const py::object& threshold, double a, double b, double fill,
           std::uint64_t seed, std::uint64_t offset, const py::object& pstrides, int threads, const std::string& simd) {
            const NoiseSpec noise{false, scalar_threshold(threshold), {}};
            return call_engine(x, out, pstrides, offset, noise, OpSpec{OpKind::affine, a, b, fill}, seed, threads,
                               simd);
        },
        py::arg("x"), py::arg("out"), py::arg("threshold"), py::arg("a"), py::arg("b"), py::arg("fill"),
        py::arg("seed"), py::arg("offset"), py::arg("pstrides") = py::none(), py::arg("threads") = -1,
        py::arg("simd") = "",
        "Alpha dropout (docs/rng.md section 14): kept (x * a) + b, dropped fill.");
    m.def(
        "gaussian_apply",
        [](const py::array& x, py::array& out, double sigma, std::uint64_t seed, std::uint64_t offset,
           const py::object& pstrides, int threads, const std::string& simd) {
            if (!(sigma >= 0.0) || sigma > std::numeric_limits<double>::max())
                throw py::value_error("sigma must be finite and >= 0, got " + std::to_string(sigma));
            const NoiseSpec noise{true, 0, ContinuousNoise{ContinuousKind::gaussian, static_cast<float>(sigma), 0, 0}};
            return call_engine(x, out, pstrides, offset, noise, OpSpec{OpKind::multiply, 0, 0, 0}, seed, threads, simd);
        },
        py::arg("x"), py::arg("out"), py::arg("sigma"), py::arg("seed"), py::arg("offset"),
        py::arg("pstrides") = py::none(), py::arg("threads") = -1, py::arg("simd") = "",
        "Gaussian dropout (docs/rng.md section 12): out = x * ((sigma32 * eps) + 1).");
    m.def(
        "concrete_apply",
        [](const py::array& x, py::array& out, double logit, double inv_temperature, double scale,
           std::uint64_t seed, std::uint64_t offset, const py::object& pstrides, int threads, const std::string& simd) {
            const NoiseSpec noise{true, 0,
                                  ContinuousNoise{ContinuousKind::concrete, static_cast<float>(logit),
                                                  static_cast<float>(inv_temperature), static_cast<float>(scale)}};
            return call_engine(x, out, pstrides, offset, noise, OpSpec{OpKind::multiply, 0, 0, 0}, seed, threads, simd);
        },
        py::arg("x"), py::arg("out"), py::arg("logit"), py::arg("inv_temperature"), py::arg("scale"),
        py::arg("seed"), py::arg("offset"), py::arg("pstrides") = py::none(), py::arg("threads") = -1,
        py::arg("simd") = "",
        "Concrete dropout (docs/rng.md section 13.2): out = x * (kappa * scale32).");
}

}  // namespace dropkit::py_bind
