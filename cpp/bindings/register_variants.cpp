// Bindings of the variant kernels (docs/rng.md sections 8-14). Every one has the signature of its
// NumPy twin in dropkit.reference._variants and goes through one validating driver
// (call_engine) into the one engine of the core (engine.cpp).
#include <limits>
#include <type_traits>
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
    const int nd = static_cast<int>(shape.size());
    with_dtype(d.itemsize(), x.data(), out.mutable_data(), [&](const auto* xp, auto* yp) {
        engine_apply(xp, yp, shape.data(), ps.data(), nd, offset, noise, op, seed, nt, s);
    });
    return out;
}

bool is_array(const py::object& v) {
    return py::isinstance<py::array>(v) && py::reinterpret_borrow<py::array>(v).ndim() != 0;
}

// Rate arrays (docs/rng.md section 9): thresholds and scales broadcast to x's shape (views, no
// copy of x's size), read through their strides by the core; any position map (section 8).
py::array rates_call(const py::array& x, py::array& out, const py::object& threshold, const py::object& scale,
                     std::uint64_t seed, std::uint64_t offset, const py::object& pstrides, int threads,
                     const std::string& simd) {
    const std::vector<std::uint64_t> ps = parse_pstrides(pstrides, x);
    const py::module_ np = py::module_::import("numpy");
    const py::tuple shape = py::cast<py::tuple>(x.attr("shape"));
    const auto t = py::array_t<std::uint64_t, py::array::forcecast>::ensure(threshold);
    const auto sc = py::array_t<double, py::array::forcecast>::ensure(scale);
    if (!t || !sc) throw py::type_error("threshold and scale must be numbers or numeric arrays");
    py::array tb, sb;
    try {
        tb = np.attr("broadcast_to")(t, shape);
        sb = np.attr("broadcast_to")(sc, shape);
    } catch (py::error_already_set&) {
        throw py::value_error("threshold and scale must broadcast to x's shape");
    }
    const auto tv = py::cast<py::array_t<std::uint64_t>>(tb);
    if (py::cast<bool>(np.attr("any")(np.attr("greater")(t, std::uint64_t{1} << 32))))
        throw py::value_error("thresholds must be in [0, 2**32]");
    const auto sv = py::cast<py::array_t<double>>(sb);
    const py::dtype d = x.dtype();
    if (d.kind() != 'f' || (d.itemsize() != 2 && d.itemsize() != 4 && d.itemsize() != 8))
        throw py::type_error("x must be float16, float32 or float64, got " + py::str(d).cast<std::string>());
    if (!out.dtype().is(d)) throw py::type_error("out must have x's dtype");
    if (!c_contiguous(x)) throw py::value_error("x must be C-contiguous");
    require_writable_contiguous(out, "out");
    if (out.ndim() != x.ndim() || !std::equal(x.shape(), x.shape() + x.ndim(), out.shape()))
        throw py::value_error("out must have x's shape");
    if (x.ndim() > kMaxRateDims) throw py::value_error("x has too many dimensions");
    const auto n = static_cast<std::size_t>(x.size());
    if (pstrides.is_none()) {
        if (n != 0 && offset + (n - 1) < offset) throw py::value_error("offset + size must not exceed 2**64");
    } else if (n != 0) {
        unsigned __int128 last = offset;
        for (std::size_t i = 0; i < ps.size(); ++i)
            last += static_cast<unsigned __int128>(x.shape(static_cast<py::ssize_t>(i)) - 1) * ps[i];
        if (last > std::numeric_limits<std::uint64_t>::max())
            throw py::value_error("every position must be below 2**64 (offset + sum((shape - 1) * pstrides))");
    }
    const int nd = static_cast<int>(x.ndim());
    std::vector<std::int64_t> shp(static_cast<std::size_t>(nd)), ts(static_cast<std::size_t>(nd)), ss(static_cast<std::size_t>(nd));
    for (int i = 0; i < nd; ++i) {
        shp[static_cast<std::size_t>(i)] = x.shape(i);
        ts[static_cast<std::size_t>(i)] = tv.strides(i) / static_cast<py::ssize_t>(sizeof(std::uint64_t));
        ss[static_cast<std::size_t>(i)] = sv.strides(i) / static_cast<py::ssize_t>(sizeof(double));
    }
    const RateArrays r{nd, shp.data(), tv.data(), ts.data(), sv.data(), ss.data()};
    const int nt = parse_threads(threads);
    const Simd s = parse_simd(simd);
    with_dtype(d.itemsize(), x.data(), out.mutable_data(), [&](const auto* xp, auto* yp) {
        rates_apply_nd(xp, yp, shp.data(), ps.data(), nd, offset, r, seed, nt, s);
    });
    return out;
}

std::uint64_t scalar_threshold(const py::object& threshold) {
    const auto t = threshold.cast<std::uint64_t>();
    if (t > (std::uint64_t{1} << 32)) throw py::value_error("threshold must be in [0, 2**32], got " + std::to_string(t));
    return t;
}

double scalar_scale(const py::object& scale) {
    return scale.cast<double>();
}

}  // namespace

void register_variants(py::module_& m) {
    m.def(
        "bernoulli_apply_nd",
        [](const py::array& x, py::array& out, const py::object& threshold, const py::object& scale,
           std::uint64_t seed, std::uint64_t offset, const py::object& pstrides, int threads, const std::string& simd) {
            if (is_array(threshold) || is_array(scale)) return rates_call(x, out, threshold, scale, seed, offset, pstrides, threads, simd);
            const NoiseSpec noise{false, scalar_threshold(threshold), {}};
            return call_engine(x, out, pstrides, offset, noise, OpSpec{OpKind::scale, scalar_scale(scale), 0, 0}, seed,
                               threads, simd);
        },
        py::arg("x"), py::arg("out"), py::arg("threshold"), py::arg("scale"), py::arg("seed"), py::arg("offset"),
        py::arg("pstrides") = py::none(), py::arg("threads") = -1, py::arg("simd") = "",
        "Bernoulli dropout with the position map of docs/rng.md section 8: out = x * scale where "
        "u(pos) >= threshold, +0 elsewhere. threshold and scale: scalars, or arrays broadcastable "
        "to x (rate arrays, section 9).");
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
        "gaussian_noise_apply",
        [](const py::array& x, py::array& out, double stddev, std::uint64_t seed, std::uint64_t offset,
           const py::object& pstrides, int threads, const std::string& simd) {
            if (!(stddev >= 0.0) || stddev > static_cast<double>(std::numeric_limits<float>::max()))
                throw py::value_error("stddev must be finite in binary32 and >= 0, got " + std::to_string(stddev));
            const NoiseSpec noise{true, 0, ContinuousNoise{ContinuousKind::normal, static_cast<float>(stddev), 0, 0}};
            return call_engine(x, out, pstrides, offset, noise, OpSpec{OpKind::add, 0, 0, 0}, seed, threads, simd);
        },
        py::arg("x"), py::arg("out"), py::arg("stddev"), py::arg("seed"), py::arg("offset"),
        py::arg("pstrides") = py::none(), py::arg("threads") = -1, py::arg("simd") = "",
        "Gaussian noise (docs/rng.md section 12.3): out = x + (stddev32 * eps).");
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
    m.def(
        "deterministic_sum",
        [](const py::array_t<double, py::array::c_style>& values, std::uint64_t offset, int threads,
           const std::string& simd) {
            if (values.ndim() != 1) throw py::type_error("values must be a 1-D float64 array");
            const auto n = static_cast<std::size_t>(values.size());
            if (n != 0 && offset + (n - 1) < offset) throw py::value_error("offset + size must not exceed 2**64");
            const int nt = parse_threads(threads);
            const Simd s = parse_simd(simd);
            const double* p = values.data();
            py::gil_scoped_release release;
            return deterministic_sum(p, n, offset, nt, s);
        },
        py::arg("values"), py::arg("offset"), py::arg("threads") = -1, py::arg("simd") = "",
        "Sum in the fixed chunk and lane order of docs/rng.md 15 (bit-identical for any thread count).");
    m.def(
        "concrete_backward",
        [](const py::array& grad, const py::array& x, py::array& dx, double logit, double inv_temperature,
           double scale, double p, std::uint64_t seed, std::uint64_t offset, int threads, const std::string& simd) {
            const py::dtype d = grad.dtype();
            if (d.kind() != 'f' || (d.itemsize() != 2 && d.itemsize() != 4 && d.itemsize() != 8))
                throw py::type_error("grad must be float16, float32 or float64, got " + py::str(d).cast<std::string>());
            if (!x.dtype().is(d) || !dx.dtype().is(d)) throw py::type_error("x and dx must have grad's dtype");
            for (const py::array* a : {&grad, &x, static_cast<const py::array*>(&dx)}) {
                if (!c_contiguous(*a)) throw py::value_error("grad, x and dx must be C-contiguous");
                if (a->ndim() != grad.ndim() || !std::equal(grad.shape(), grad.shape() + grad.ndim(), a->shape()))
                    throw py::value_error("x and dx must have grad's shape");
                if (reinterpret_cast<std::uintptr_t>(a->data()) % static_cast<std::uintptr_t>(d.itemsize()) != 0)
                    throw py::value_error("grad, x and dx must be aligned for their dtype");
            }
            if (!dx.writeable()) throw py::value_error("dx must be writable");
            const auto n = static_cast<std::size_t>(grad.size());
            if (n != 0 && offset + (n - 1) < offset) throw py::value_error("offset + size must not exceed 2**64");
            const ConcreteBackward c{static_cast<float>(logit), static_cast<float>(inv_temperature),
                                     static_cast<float>(scale), p, inv_temperature};
            const int nt = parse_threads(threads);
            const Simd s = parse_simd(simd);
            const void* xp = x.data();
            double sum = 0.0;
            with_dtype(d.itemsize(), grad.data(), dx.mutable_data(), [&](const auto* gp, auto* dp) {
                using T = std::remove_cv_t<std::remove_pointer_t<decltype(gp)>>;
                sum = concrete_backward(gp, static_cast<const T*>(xp), dp, n, c, seed, offset, nt, s);
            });
            return py::make_tuple(dx, sum);
        },
        py::arg("grad"), py::arg("x"), py::arg("dx"), py::arg("logit"), py::arg("inv_temperature"), py::arg("scale"),
        py::arg("p"), py::arg("seed"), py::arg("offset"), py::arg("threads") = -1, py::arg("simd") = "",
        "Concrete dropout backward (docs/rng.md 13.3): (dx, d loss / d logit), the sum in the fixed "
        "order of section 15.");
}

}  // namespace dropkit::py_bind
