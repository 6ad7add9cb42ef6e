// The one engine behind every dropout variant (dropkit.hpp): a noise source (Bernoulli keep bits
// or continuous multipliers, made by the SIMD targets' skeleton), a position map (docs/rng.md
// section 8) and an apply operation (scale, affine fill or multiply).
//
// The default map (positions offset + i) runs chunk by chunk: each chunk's noise is made into a
// small buffer and applied at once (standard dropout with a scale keeps its own fused kernel).
// Other maps (broadcast noise, blocks of a larger array) make the noise at noise size, over the
// range of positions the call touches, and apply it with a broadcast, run by run.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/parallel.hpp"
#include "core/half.hpp"

namespace dropkit {
namespace {

using detail::parallel_chunks;
using detail::table;

// ---- apply operations: the target's loops (element_ops.hpp) through the table ---------------------

template <class T>
inline void apply_run(const KernelTable& k, const T* x, T* y, std::size_t len, const OpSpec& op,
                      const std::uint8_t* keep, const float* mult, std::uint64_t step) {
    k.of<T>().ops(x, y, len, op, keep, mult, step);
}
// Standard dropout (a scale, the default map): the fused kernel of dispatch.cpp (keep bits as SIMD
// masks, streaming stores for large outputs); the scale is rounded to the compute type there.
inline void bernoulli_fused(const float* x, float* y, std::size_t n, std::uint64_t t, double s, std::uint64_t seed,
                            std::uint64_t offset, int threads, Simd simd) {
    bernoulli_apply(x, y, n, t, static_cast<float>(s), seed, offset, threads, simd);
}
inline void bernoulli_fused(const double* x, double* y, std::size_t n, std::uint64_t t, double s,
                            std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    bernoulli_apply(x, y, n, t, s, seed, offset, threads, simd);
}
inline void bernoulli_fused(const std::uint16_t* x, std::uint16_t* y, std::size_t n, std::uint64_t t, double s,
                            std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    bernoulli_apply_f16(x, y, n, t, static_cast<float>(s), seed, offset, threads, simd);
}

template <class T>
inline void affine_fused(const KernelTable& k, const T* x, T* y, std::size_t i0, std::size_t i1, std::uint64_t t,
                         const OpSpec& op, std::uint64_t seed, std::uint64_t offset, bool nt) {
    k.of<T>().affine(x, y, i0, i1, t, op, seed, offset, nt);
}

template <class T>
inline void run_runs(const KernelTable& k, const T* x, T* y, std::size_t r0, std::size_t r1, const RunMap& rm,
                     const OpSpec& op, const std::uint8_t* keep, const float* mult) {
    k.of<T>().runs(x, y, r0, r1, rm, op, keep, mult);
}

// x * m in the compute type (m binary32; widened exactly for double; float16 through float32).
inline float mul_m_any(float v, float m) { return v * m; }
inline double mul_m_any(double v, float m) { return v * static_cast<double>(m); }
inline std::uint16_t mul_m_any(std::uint16_t v, float m) { return float_to_half(half_to_float(v) * m); }

// Noise of positions p0 .. p0 + n - 1 on one thread: keep bytes, multipliers, or (rate arrays over
// a position map, `words` given) the full uniforms u(g) compared per element later.
void make_noise(const KernelTable& k, const NoiseSpec& noise, std::uint64_t seed, std::uint64_t p0, std::size_t n,
                std::uint8_t* keep, float* mult, std::uint32_t* words = nullptr) {
    if (words != nullptr)
        k.uniform_words(words, 0, n, seed, p0);
    else if (noise.continuous)
        k.continuous_noise(mult, 0, n, noise.c, seed, p0);
    else
        k.mask_bytes(keep, 0, n, noise.t, seed, p0);
}

template <class T>
inline void rate_runs(const KernelTable& k, const T* x, T* y, std::size_t r0, std::size_t r1, const RateRunMap& m,
                      const std::uint32_t* u, std::uint64_t u0) {
    k.of<T>().rate_runs(x, y, r0, r1, m, u, u0);
}

template <class T>
inline void continuous_fused(const KernelTable& k, const T* x, T* y, std::size_t i0, std::size_t i1,
                             const ContinuousNoise& c, OpKind op, std::uint64_t seed, std::uint64_t offset) {
    k.of<T>().continuous(x, y, i0, i1, c, op, seed, offset);
}

// Positions of noise a sparse map (a block of a larger array) makes at once for its runs.
constexpr std::size_t kSparseWindow = 8192;

// The map with axes of size 1 dropped and neighbours merged where positions run on (and, with
// rate arrays, their threshold and scale strides too: ts and ss, empty otherwise).
struct Map {
    std::vector<std::int64_t> shape;
    std::vector<std::uint64_t> ps;
    std::vector<std::int64_t> ts, ss;
    std::size_t n = 1;
};

Map collapse(const std::int64_t* shape, const std::uint64_t* pstrides, int ndim, const RateArrays* rates = nullptr) {
    Map m;
    for (int d = 0; d < ndim; ++d) m.n *= static_cast<std::size_t>(shape[d]);
    for (int d = ndim - 1; d >= 0; --d) {
        if (shape[d] == 1) continue;
        if (!m.shape.empty() && pstrides[d] == m.ps.front() * static_cast<std::uint64_t>(m.shape.front()) &&
            (rates == nullptr || (rates->tstrides[d] == m.ts.front() * m.shape.front() &&
                                  rates->sstrides[d] == m.ss.front() * m.shape.front()))) {
            m.shape.front() *= shape[d];  // this axis continues the (merged) inner one
            continue;
        }
        m.shape.insert(m.shape.begin(), shape[d]);
        m.ps.insert(m.ps.begin(), pstrides[d]);
        if (rates != nullptr) {
            m.ts.insert(m.ts.begin(), rates->tstrides[d]);
            m.ss.insert(m.ss.begin(), rates->sstrides[d]);
        }
    }
    return m;
}

// With `rates` (rate arrays, docs/rng.md section 9; the caller takes the default map to
// rates_apply), the noise is the uniform u(g) of each position, compared per element with its own
// threshold (rate_runs); `noise` and `spec` are then unused.
template <class T>
void run_engine(const T* x, T* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
                std::uint64_t offset, const NoiseSpec& noise, const OpSpec& spec, std::uint64_t seed, int threads,
                Simd simd, const RateArrays* rates = nullptr) {
    const KernelTable& k = table(simd);
    const OpSpec& op = spec;
    const Map m = collapse(shape, pstrides, ndim, rates);
    if (m.n == 0) return;
    const bool default_map = rates == nullptr && (m.shape.empty() || (m.shape.size() == 1 && m.ps[0] == 1));

    if (default_map && noise.continuous && (op.kind == OpKind::multiply || op.kind == OpKind::add)) {
        // fused: noise made and used per tile
        parallel_chunks(m.n, offset, threads, false, [&](std::size_t i0, std::size_t i1) {
            continuous_fused(k, x, y, i0, i1, noise.c, op.kind, seed, offset);
        });
        return;
    }
    if (default_map && !noise.continuous && op.kind == OpKind::affine) {  // alpha: the fused walk, affine form
        const bool nt = detail::use_streaming(Store::automatic, m.n * sizeof *y);
        parallel_chunks(m.n, offset, threads, false, [&](std::size_t i0, std::size_t i1) {
            affine_fused(k, x, y, i0, i1, noise.t, op, seed, offset, nt);
        });
        return;
    }
    if (default_map && !noise.continuous && op.kind == OpKind::scale) {  // standard dropout: its own kernel
        bernoulli_fused(x, y, m.n, noise.t, op.a, seed, offset, threads, simd);
        return;
    }
    if (default_map) {  // positions offset + i: noise per chunk into a buffer, then apply
        parallel_chunks(m.n, offset, threads, false, [&](std::size_t i0, std::size_t i1) {
            thread_local std::vector<std::uint8_t> keep;
            thread_local std::vector<float> mult;
            keep.resize(noise.continuous ? 0 : kChunk);
            mult.resize(noise.continuous ? kChunk : 0);
            for (std::size_t i = i0; i < i1; i += kChunk) {
                const std::size_t len = std::min(kChunk, i1 - i);
                make_noise(k, noise, seed, offset + i, len, keep.data(), mult.data());
                apply_run(k, x + i, y + i, len, op, keep.data(), mult.data(), 1);
            }
        });
        return;
    }

    // Runs along the innermost (merged) axis; their positions base(r) + j * step.
    const std::size_t len = static_cast<std::size_t>(m.shape.back());
    const std::uint64_t step = m.ps.back();
    const std::size_t runs = m.n / len;
    const int outer = static_cast<int>(m.shape.size()) - 1;
    std::uint64_t span = 0;  // last position - offset
    for (std::size_t d = 0; d < m.shape.size(); ++d) span += static_cast<std::uint64_t>(m.shape[d] - 1) * m.ps[d];
    // The position of run r (relative to offset), and a walker that steps it run by run with the
    // outer multi-index (no division per run).
    struct Runs {
        const Map& m;
        int outer;
        std::vector<std::int64_t> idx;
        std::uint64_t base = 0;
        Runs(const Map& map, int n_outer, std::size_t r) : m(map), outer(n_outer), idx(static_cast<std::size_t>(n_outer)) {
            for (int d = outer - 1; d >= 0; --d) {
                const auto du = static_cast<std::size_t>(d);
                const auto sd = static_cast<std::size_t>(m.shape[du]);
                idx[du] = static_cast<std::int64_t>(r % sd);
                base += static_cast<std::uint64_t>(idx[du]) * m.ps[du];
                r /= sd;
            }
        }
        void next() {
            for (int d = outer - 1; d >= 0; --d) {
                const auto du = static_cast<std::size_t>(d);
                base += m.ps[du];
                if (++idx[du] < m.shape[du]) return;
                base -= static_cast<std::uint64_t>(idx[du]) * m.ps[du];
                idx[du] = 0;
            }
        }
    };

    // Runs per parallel chunk: about kChunk elements each.
    const std::size_t runs_per = std::max<std::size_t>(1, kChunk / len);
    const std::size_t nchunks = (runs + runs_per - 1) / runs_per;
    // The noise buffers hold keep bytes, multipliers or (rate arrays) uniform words.
    const bool bytes = rates == nullptr && !noise.continuous, floats = rates == nullptr && noise.continuous;
    RateRunMap rr{};
    if (rates != nullptr)
        rr = RateRunMap{outer, m.shape.data(), m.ps.data(), m.ts.data(), m.ss.data(), len, step,
                        m.ts.back(), m.ss.back(), rates->t, rates->s};
    if (span < m.n) {  // dense: make the noise of every position once, at noise size
        const std::size_t npos = static_cast<std::size_t>(span) + 1;
        std::vector<std::uint8_t> keep(bytes ? npos : 0);
        std::vector<float> mult(floats ? npos : 0);
        std::vector<std::uint32_t> words(rates != nullptr ? npos : 0);
        parallel_chunks(npos, offset, threads, false, [&](std::size_t i0, std::size_t i1) {
            make_noise(k, noise, seed, offset + i0, i1 - i0, keep.data() + (keep.empty() ? 0 : i0),
                       mult.data() + (mult.empty() ? 0 : i0), words.empty() ? nullptr : words.data() + i0);
        });
        if (rates != nullptr) {
            parallel_chunks(nchunks * kChunk, 0, threads, true, [&](std::size_t c0, std::size_t c1) {
                const std::size_t r0 = (c0 / kChunk) * runs_per;
                const std::size_t r1 = std::min(runs, ((c1 + kChunk - 1) / kChunk) * runs_per);
                rate_runs(k, x, y, r0, r1, rr, words.data(), 0);
            });
            return;
        }
        const RunMap rm{outer, m.shape.data(), m.ps.data(), len, step, detail::use_streaming(Store::automatic, m.n * sizeof *y)};
        parallel_chunks(nchunks * kChunk, 0, threads, true, [&](std::size_t c0, std::size_t c1) {
            const std::size_t r0 = (c0 / kChunk) * runs_per;
            const std::size_t r1 = std::min(runs, ((c1 + kChunk - 1) / kChunk) * runs_per);
            run_runs(k, x, y, r0, r1, rm, op, keep.empty() ? nullptr : keep.data(), mult.empty() ? nullptr : mult.data());
        });
        return;
    }
    // Sparse (a block of a larger array): runs make noise over a window of positions that the
    // following runs reuse while they fall inside it (rows of a block sit a row width apart).
    parallel_chunks(nchunks * kChunk, 0, threads, true, [&](std::size_t c0, std::size_t c1) {
        const std::size_t n_noise = step == 0 ? 1 : (len - 1) * static_cast<std::size_t>(step) + 1;
        const std::size_t window = std::max<std::size_t>(n_noise, kSparseWindow);
        std::vector<std::uint8_t> keep(bytes ? window : 0);
        std::vector<float> mult(floats ? window : 0);
        std::vector<std::uint32_t> words(rates != nullptr ? window : 0);
        std::uint64_t w0 = 0;
        bool have = false;
        for (std::size_t c = c0 / kChunk; c < (c1 + kChunk - 1) / kChunk; ++c) {
            const std::size_t r1 = std::min(runs, (c + 1) * runs_per);
            Runs it(m, outer, c * runs_per);
            for (std::size_t r = c * runs_per; r < r1; ++r, it.next()) {
                const std::uint64_t b = it.base;  // relative to offset
                if (!have || b < w0 || b - w0 + n_noise > window) {
                    w0 = b;
                    const std::uint64_t room = span - b + 1;  // positions left in the call
                    const std::size_t make = static_cast<std::size_t>(std::min<std::uint64_t>(window, room));
                    make_noise(k, noise, seed, offset + w0, make, keep.data(), mult.data(),
                               words.empty() ? nullptr : words.data());
                    have = true;
                }
                if (rates != nullptr) {
                    rate_runs(k, x, y, r, r + 1, rr, words.data(), w0);
                    continue;
                }
                const std::size_t at = static_cast<std::size_t>(b - w0);
                apply_run(k, x + r * len, y + r * len, len, op, keep.empty() ? nullptr : keep.data() + at,
                          mult.empty() ? nullptr : mult.data() + at, step);
            }
        }
    });
}

}  // namespace

// ---- concrete dropout's backward (docs/rng.md sections 13.3 and 15) ---------------------------

namespace {

// The deterministic sum of docs/rng.md 15 over elements [0, n) at reduction positions offset + i:
// chunks of kChunk positions (the thread chunks), 16 lane accumulators keyed by position mod 16
// and folded 8, 4, 2, 1, then the chunks' partials left to right. segment(i, len, g0, acc) makes
// the summands of elements [i, i + len) (all in the chunk of g0 = offset + i) and adds each to
// acc[(g0 + e) % 16], in increasing e.
template <class Segment>
double chunked_sum(std::size_t n, std::uint64_t offset, int threads, Segment&& segment) {
    if (n == 0) return 0.0;
    const std::uint64_t c_first = offset / kChunk;
    const std::size_t nch = static_cast<std::size_t>((offset + (n - 1)) / kChunk - c_first) + 1;
    std::vector<double> partial(nch, 0.0);
    parallel_chunks(n, offset, threads, false, [&](std::size_t i0, std::size_t i1) {
        for (std::size_t i = i0; i < i1;) {
            const std::uint64_t g0 = offset + i;
            const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(i1 - i, kChunk - g0 % kChunk));
            double acc[16] = {};
            segment(i, len, g0, acc);
            for (int h = 8; h >= 1; h /= 2)
                for (int l = 0; l < h; ++l) acc[l] = acc[l] + acc[l + h];
            partial[static_cast<std::size_t>(g0 / kChunk - c_first)] = acc[0];
            i += len;
        }
    });
    double total = 0.0;
    for (double v : partial) total = total + v;
    return total;
}

template <class T>
inline void concrete_grad(const KernelTable& k, const T* g, const T* x, T* dx, std::size_t len, const float* kappa,
                          const ConcreteBackward& c, unsigned lane0, double* acc) {
    k.of<T>().concrete_grad(g, x, dx, len, kappa, c, lane0, acc);
}

template <class T>
double concrete_backward_impl(const T* g, const T* x, T* dx, std::size_t n, const ConcreteBackward& c,
                              std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    const KernelTable& k = table(simd);
    // kappa itself: the concrete noise with scale 1 (kappa * 1 is kappa exactly)
    const ContinuousNoise kap{ContinuousKind::concrete, c.theta32, c.inv_t32, 1.0f};
    return chunked_sum(n, offset, threads, [&](std::size_t i, std::size_t len, std::uint64_t g0, double* acc) {
        thread_local std::vector<float> kappa;
        kappa.resize(kChunk);
        k.continuous_noise(kappa.data(), 0, len, kap, seed, g0);
        concrete_grad(k, g + i, x + i, dx + i, len, kappa.data(), c, static_cast<unsigned>(g0 % 16), acc);
    });
}

}  // namespace

double concrete_backward(const float* g, const float* x, float* dx, std::size_t n, const ConcreteBackward& c,
                         std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    return concrete_backward_impl(g, x, dx, n, c, seed, offset, threads, simd);
}
double concrete_backward(const double* g, const double* x, double* dx, std::size_t n, const ConcreteBackward& c,
                         std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    return concrete_backward_impl(g, x, dx, n, c, seed, offset, threads, simd);
}
double concrete_backward_f16(const std::uint16_t* g, const std::uint16_t* x, std::uint16_t* dx, std::size_t n,
                             const ConcreteBackward& c, std::uint64_t seed, std::uint64_t offset, int threads,
                             Simd simd) {
    return concrete_backward_impl(g, x, dx, n, c, seed, offset, threads, simd);
}

double deterministic_sum(const double* v, std::size_t n, std::uint64_t offset, int threads, Simd simd) {
    (void)simd;  // plain binary64 adds in the order of docs/rng.md 15 (no target-specific code)
    return chunked_sum(n, offset, threads, [&](std::size_t i, std::size_t len, std::uint64_t g0, double* acc) {
        for (std::size_t e = 0; e < len; ++e) acc[(g0 + e) % 16] += v[i + e];
    });
}

namespace {

// Rates that vary along the last axis only (a rate per feature, the common adaptive-dropout case):
// the thresholds' bit planes over one period, made once for the call (isa_table.hpp
// PeriodicRates). `ok` is false for other rate arrays, rows too long for the planes to stay in
// cache, and calls too short to pay for making them; those take the tile-by-tile transposition.
//
// The planes depend only on the thresholds of one period (and the phase), so the calling thread
// keeps those of its last call and reuses them when the next call has the same ones: a layer's
// forward and backward, and the training steps between two updates of adaptive rates, make them
// once. (The key is the thresholds themselves, compared in full: a hit is exact, never a guess.)
struct Periodic {
    std::vector<std::uint32_t> planes, never;
    std::vector<float> s32;
    std::vector<double> s64;
    PeriodicRates pr{};
    bool ok = false;
    // the key of `planes`: the period's thresholds (clamped) and their never-bits, f and phase
    std::vector<std::uint32_t> key_t32, key_never;
    std::int64_t key_f = -1, key_phase = -1;
};

template <class T>
const Periodic& periodic_rates(const KernelTable& k, std::size_t n, const RateArrays& r, std::uint64_t offset) {
    thread_local Periodic P;
    P.ok = false;
    const int last = r.ndim - 1;
    if (last < 0) return P;
    for (int d = 0; d < last; ++d)
        if (r.shape[d] > 1 && (r.tstrides[d] != 0 || r.sstrides[d] != 0)) return P;
    const std::int64_t f = r.shape[last];
    const std::int64_t period = f / std::gcd<std::int64_t>(f, 32) * 32;
    if (f < 1 || period > (std::int64_t{1} << 16) || n < 2 * static_cast<std::size_t>(period)) return P;
    const auto phase = static_cast<std::int64_t>(offset % 32);
    const auto len = static_cast<std::size_t>(period), groups = len / 32;
    std::vector<std::uint32_t> t32(len), never(groups, 0), plane(groups);
    // (no division per element below)
    std::int64_t feat = (period - phase) % f;  // the feature of q = 0
    for (std::size_t q = 0; q < len; ++q) {
        const std::uint64_t t = r.t[feat * r.tstrides[last]];
        t32[q] = t >= (std::uint64_t{1} << 32) ? 0xFFFFFFFFu : static_cast<std::uint32_t>(t);
        if (t >= (std::uint64_t{1} << 32)) never[q / 32] |= 1u << (q % 32);
        if (++feat == f) feat = 0;
    }
    const std::size_t row = groups / 4 + kMaxTileWords / 4 + 2;
    if (P.key_f == f && P.key_phase == phase && P.key_t32 == t32 && P.key_never == never)
        goto planes_ready;  // the last call's planes are these
    P.planes.assign(32 * 4 * row, 0);
    for (int p = 0; p < 32; ++p) {
        k.plane_bits(t32.data(), p, plane.data(), groups);
        std::uint32_t* out = P.planes.data() + static_cast<std::size_t>(p) * 4 * row;
        std::size_t kk = 0;  // (4 j + w) mod groups
        for (std::size_t j = 0; j < row; ++j)
            for (std::size_t w = 0; w < 4; ++w) {
                out[w * row + j] = plane[kk];
                if (++kk == groups) kk = 0;
            }
    }
    P.never.resize(groups + kMaxTileWords + 4);
    for (std::size_t q = 0; q < P.never.size(); ++q) P.never[q] = never[q < groups ? q : q % groups];
    P.key_t32.swap(t32);
    P.key_never.swap(never);
    P.key_f = f;
    P.key_phase = phase;
planes_ready:
    const auto fs = static_cast<std::size_t>(f);
    const std::size_t ns = fs + kMaxTile;
    auto fill = [&](auto& v) {
        using S = typename std::decay_t<decltype(v)>::value_type;
        v.resize(ns);
        for (std::size_t j = 0; j < fs; ++j) v[j] = static_cast<S>(r.s[static_cast<std::int64_t>(j) * r.sstrides[last]]);
        for (std::size_t j = fs; j < ns; ++j) v[j] = v[j - fs];
    };
    if (std::is_same<T, double>::value)
        fill(P.s64);
    else
        fill(P.s32);
    const bool nt = detail::use_streaming(Store::automatic, n * sizeof(T));
    P.pr = PeriodicRates{f, period, phase, row, P.planes.data(), P.never.data(), P.s32.data(), P.s64.data(), nt};
    P.ok = true;
    return P;
}

template <class T>
void rates_run(const T* x, T* y, std::size_t n, const RateArrays& r, std::uint64_t seed, std::uint64_t offset,
               int threads, Simd simd) {
    const KernelTable& k = table(simd);
    const TypedKernels<T>& kt = k.of<T>();
    const Periodic& P = periodic_rates<T>(k, n, r, offset);
    if (P.ok) {
        parallel_chunks(n, offset, threads, false,
                        [&](std::size_t i0, std::size_t i1) { kt.periodic(x, y, i0, i1, P.pr, seed, offset); });
    } else {
        parallel_chunks(n, offset, threads, false,
                        [&](std::size_t i0, std::size_t i1) { kt.rates(x, y, i0, i1, r, seed, offset); });
    }
}

}  // namespace

void rates_apply(const float* x, float* y, std::size_t n, const RateArrays& r, std::uint64_t seed,
                 std::uint64_t offset, int threads, Simd simd) {
    rates_run(x, y, n, r, seed, offset, threads, simd);
}
void rates_apply(const double* x, double* y, std::size_t n, const RateArrays& r, std::uint64_t seed,
                 std::uint64_t offset, int threads, Simd simd) {
    rates_run(x, y, n, r, seed, offset, threads, simd);
}
void rates_apply_f16(const std::uint16_t* x, std::uint16_t* y, std::size_t n, const RateArrays& r,
                     std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    rates_run(x, y, n, r, seed, offset, threads, simd);
}

namespace {

inline void rates_flat(const float* x, float* y, std::size_t n, const RateArrays& r, std::uint64_t seed,
                       std::uint64_t offset, int threads, Simd simd) {
    rates_apply(x, y, n, r, seed, offset, threads, simd);
}
inline void rates_flat(const double* x, double* y, std::size_t n, const RateArrays& r, std::uint64_t seed,
                       std::uint64_t offset, int threads, Simd simd) {
    rates_apply(x, y, n, r, seed, offset, threads, simd);
}
inline void rates_flat(const std::uint16_t* x, std::uint16_t* y, std::size_t n, const RateArrays& r,
                       std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    rates_apply_f16(x, y, n, r, seed, offset, threads, simd);
}

// The default map (C-order strides on every axis longer than 1) runs rates_apply; any other goes
// through the engine's broadcast paths (uniform words at noise size, compared per element).
template <class T>
void rates_nd(const T* x, T* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
              std::uint64_t offset, const RateArrays& r, std::uint64_t seed, int threads, Simd simd) {
    std::size_t n = 1;
    std::uint64_t c = 1;
    bool default_map = true;
    for (int d = ndim - 1; d >= 0; --d) {
        if (shape[d] != 1 && pstrides[d] != c) default_map = false;
        c *= static_cast<std::uint64_t>(shape[d]);
        n *= static_cast<std::size_t>(shape[d]);
    }
    if (default_map)
        rates_flat(x, y, n, r, seed, offset, threads, simd);
    else
        run_engine(x, y, shape, pstrides, ndim, offset, NoiseSpec{false, 0, {}}, OpSpec{OpKind::scale, 0, 0, 0}, seed,
                   threads, simd, &r);
}

}  // namespace

void rates_apply_nd(const float* x, float* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
                    std::uint64_t offset, const RateArrays& r, std::uint64_t seed, int threads, Simd simd) {
    rates_nd(x, y, shape, pstrides, ndim, offset, r, seed, threads, simd);
}
void rates_apply_nd(const double* x, double* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
                    std::uint64_t offset, const RateArrays& r, std::uint64_t seed, int threads, Simd simd) {
    rates_nd(x, y, shape, pstrides, ndim, offset, r, seed, threads, simd);
}
void rates_apply_nd_f16(const std::uint16_t* x, std::uint16_t* y, const std::int64_t* shape,
                        const std::uint64_t* pstrides, int ndim, std::uint64_t offset, const RateArrays& r,
                        std::uint64_t seed, int threads, Simd simd) {
    rates_nd(x, y, shape, pstrides, ndim, offset, r, seed, threads, simd);
}

void engine_apply(const float* x, float* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
                  std::uint64_t offset, const NoiseSpec& noise, const OpSpec& op, std::uint64_t seed, int threads,
                  Simd simd) {
    run_engine(x, y, shape, pstrides, ndim, offset, noise, op, seed, threads, simd);
}
void engine_apply(const double* x, double* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
                  std::uint64_t offset, const NoiseSpec& noise, const OpSpec& op, std::uint64_t seed, int threads,
                  Simd simd) {
    run_engine(x, y, shape, pstrides, ndim, offset, noise, op, seed, threads, simd);
}
void engine_apply_f16(const std::uint16_t* x, std::uint16_t* y, const std::int64_t* shape,
                      const std::uint64_t* pstrides, int ndim, std::uint64_t offset, const NoiseSpec& noise,
                      const OpSpec& op, std::uint64_t seed, int threads, Simd simd) {
    run_engine(x, y, shape, pstrides, ndim, offset, noise, op, seed, threads, simd);
}

}  // namespace dropkit
