// What an element becomes (dropkit.hpp OpSpec), written once and compiled by every SIMD target
// (included from simd_kernels.hpp inside the target's namespace, so that each target's loops are
// vectorised with its own instructions): the engine reaches them through the KernelTable.
#pragma once

namespace dropkit {
namespace DROPKIT_ISA_NS {

template <class CT>
struct Op {
    OpKind kind;
    CT a, b, fill;
    explicit Op(const OpSpec& s)
        : kind(s.kind), a(static_cast<CT>(s.a)), b(static_cast<CT>(s.b)), fill(static_cast<CT>(s.fill)) {}
};

// Element type T <-> compute type.
template <class T>
struct Compute {
    using CT = T;
    static CT in(T v) { return v; }
    static T out(CT v) { return v; }
};
template <>
struct Compute<std::uint16_t> {
    using CT = float;
    static float in(std::uint16_t v) { return half_to_float(v); }
    static std::uint16_t out(float v) { return float_to_half(v); }
};

// x * m in the compute type (m binary32; widened exactly for double; float16 through float32).
inline float mul_m_any(float v, float m) { return v * m; }
inline double mul_m_any(double v, float m) { return v * static_cast<double>(m); }
inline std::uint16_t mul_m_any(std::uint16_t v, float m) { return float_to_half(half_to_float(v) * m); }

// Branch-free select of a computed value or a fill (a random mask would mispredict branches):
// the bit pattern of `v` where keep, of `fill` elsewhere, so a dropped NaN still becomes `fill`.
inline float pick(bool keep, float v, float fill) {
    const std::uint32_t m = 0u - static_cast<std::uint32_t>(keep);
    return bits_to_float((float_to_bits(v) & m) | (float_to_bits(fill) & ~m));
}
inline double pick(bool keep, double v, double fill) {
    const std::uint64_t m = 0ull - static_cast<std::uint64_t>(keep);
    std::uint64_t a, b;
    std::memcpy(&a, &v, sizeof a);
    std::memcpy(&b, &fill, sizeof b);
    a = (a & m) | (b & ~m);
    double r;
    std::memcpy(&r, &a, sizeof r);
    return r;
}

// y[j] = op(x[j], noise value j * step): keep bytes or multipliers; step 1 along a run of
// positions, or another stride (0 is apply_const's).
template <class T>
void apply_run(const T* x0, T* y0, std::size_t len, const Op<typename Compute<T>::CT>& op,
               const std::uint8_t* keep, const float* mult, std::uint64_t step) {
    using C = Compute<T>;
    using CT = typename C::CT;
    const CT a = op.a, b = op.b, fill = op.fill, zero = CT(0);
    const T* x = x0;  // x may be y (in place): element j is read before it is written
    T* y = y0;
    const std::size_t st = static_cast<std::size_t>(step);
    switch (op.kind) {
        case OpKind::scale:
            for (std::size_t j = 0; j < len; ++j) y[j] = C::out(pick(keep[j * st] != 0, C::in(x[j]) * a, zero));
            break;
        case OpKind::affine:
            for (std::size_t j = 0; j < len; ++j) y[j] = C::out(pick(keep[j * st] != 0, (C::in(x[j]) * a) + b, fill));
            break;
        case OpKind::multiply:
            for (std::size_t j = 0; j < len; ++j) y[j] = C::out(C::in(x[j]) * static_cast<CT>(mult[j * st]));
            break;
        case OpKind::add:
            for (std::size_t j = 0; j < len; ++j) y[j] = C::out(C::in(x[j]) + static_cast<CT>(mult[j * st]));
            break;
    }
}

// A broadcast run (one noise value for the whole run): the constant forms. The affine form is
// branch-free, (x * a) + b or the fill selected lane by lane, its input read either way (a
// prefetcher that sees reads skip runs at random loses its streams, stream_runs below).
template <class T>
void apply_const(const T* x, T* y, std::size_t len, const Op<typename Compute<T>::CT>& op, bool keep, float mult) {
    using C = Compute<T>;
    using CT = typename C::CT;
    const CT a = op.a, b = op.b, fill = op.fill, m = static_cast<CT>(mult);
    switch (op.kind) {
        case OpKind::multiply:
            for (std::size_t j = 0; j < len; ++j) y[j] = C::out(C::in(x[j]) * m);
            break;
        case OpKind::add:
            for (std::size_t j = 0; j < len; ++j) y[j] = C::out(C::in(x[j]) + m);
            break;
        case OpKind::affine:
            for (std::size_t j = 0; j < len; ++j) y[j] = C::out(pick(keep, (C::in(x[j]) * a) + b, fill));
            break;
        case OpKind::scale:
            if (!keep)
                for (std::size_t j = 0; j < len; ++j) y[j] = T(0);
            else
                for (std::size_t j = 0; j < len; ++j) y[j] = C::out(C::in(x[j]) * a);
            break;
    }
}

// The outer multi-index of a run and its noise position, stepped run by run (no division per run).
struct RunWalker {
    const RunMap& rm;
    std::int64_t idx[kMaxRunDims];
    std::uint64_t base = 0;
    RunWalker(const RunMap& map, std::size_t r) : rm(map) {
        for (int d = rm.outer - 1; d >= 0; --d) {
            idx[d] = static_cast<std::int64_t>(r % static_cast<std::size_t>(rm.shape[d]));
            base += static_cast<std::uint64_t>(idx[d]) * rm.ps[d];
            r /= static_cast<std::size_t>(rm.shape[d]);
        }
    }
    void next() {
        for (int d = rm.outer - 1; d >= 0; --d) {
            base += rm.ps[d];
            if (++idx[d] < rm.shape[d]) return;
            base -= static_cast<std::uint64_t>(idx[d]) * rm.ps[d];
            idx[d] = 0;
        }
    }
};

// Set bits [j, j + n) of a little-endian bit array (the others untouched).
inline void set_bits(std::uint8_t* bits, std::size_t j, std::size_t n) {
    for (; n > 0 && (j & 7) != 0; ++j, --n) bits[j >> 3] |= static_cast<std::uint8_t>(1u << (j & 7));
    std::memset(bits + (j >> 3), 0xFF, n >> 3);
    j += n & ~std::size_t{7};
    for (n &= 7; n > 0; ++j, --n) bits[j >> 3] |= static_cast<std::uint8_t>(1u << (j & 7));
}

// Runs r0 .. r1 - 1 of one noise value each (step 0), scale or multiply form, with streaming
// stores (targets with Lanes<T>): the runs are adjacent in memory, so they are applied as one
// contiguous range through apply_lanes, block by block, with each block's keep bits (or
// multipliers) expanded from its runs. One stream of whole-line stores: applying run by run
// would mix ordinary and streaming stores in the lines where runs meet whenever a run boundary
// is not 64-byte aligned (NumPy's large arrays are 16-byte aligned), and each such line then
// costs a round trip to memory (docs/performance.md). Every input is
// read, dropped or not: skipping the reads of dropped runs at random breaks the hardware
// prefetcher's streams (docs/performance.md). The same IEEE operations as
// apply_const: `x * m` is the kept scale with s = m. Returns false (nothing done) for the
// affine form and for float16 multipliers.
template <class Isa, class T, class W>
bool stream_runs(const T* x, T* y, std::size_t r0, std::size_t r1, const RunMap& rm,
                 const Op<typename Compute<T>::CT>& op, const std::uint8_t* keep, const float* mult, W&& walker) {
    using CT = typename Compute<T>::CT;
    if constexpr (HasLanes<Isa, T>::value) {
        const bool multiply = op.kind == OpKind::multiply;
        if (op.kind == OpKind::affine || op.kind == OpKind::add || (multiply && !std::is_same<T, CT>::value))
            return false;
        constexpr std::size_t kBlock = 4096;  // elements; a multiple of every target's line
        alignas(64) std::uint8_t bits[kBlock / 8 + 8];
        alignas(64) CT sc[kBlock];
        std::size_t in_run = 0;  // elements of the current run already placed
        std::size_t e = r0 * rm.len;
        const std::size_t end = r1 * rm.len;
        // the first block ends on a 64-byte boundary of y, so that every later one starts on one
        const std::size_t skew = (reinterpret_cast<std::uintptr_t>(y + e) % 64) / sizeof(T);
        std::size_t cnt = std::min(end - e, kBlock - skew);
        while (e < end) {
            std::memset(bits, multiply ? 0xFF : 0, sizeof bits);
            for (std::size_t j = 0; j < cnt;) {
                const std::size_t take = std::min(rm.len - in_run, cnt - j);
                const auto b = static_cast<std::size_t>(walker.base);
                if (multiply)
                    std::fill(sc + j, sc + j + take, static_cast<CT>(mult[b]));
                else if (keep == nullptr || keep[b] != 0)
                    set_bits(bits, j, take);
                j += take;
                in_run += take;
                if (in_run == rm.len) {
                    in_run = 0;
                    walker.next();
                }
            }
            std::size_t done = 0;
            if (multiply) {
                if constexpr (std::is_same<T, CT>::value) {
                    done = apply_lanes<Isa>(x + e, y + e, cnt, bits, 0, static_cast<const CT*>(sc), true);
                    for (; done < cnt; ++done) y[e + done] = mul_keep(x[e + done], sc[done], true);
                }
            } else {
                done = apply_lanes<Isa>(x + e, y + e, cnt, bits, 0, op.a, true);
                for (; done < cnt; ++done) y[e + done] = mul_keep(x[e + done], op.a, byte_bit(bits, done));
            }
            e += cnt;
            cnt = std::min(end - e, kBlock);
        }
        return true;
    } else {
        (void)x, (void)y, (void)r0, (void)r1, (void)rm, (void)op, (void)keep, (void)mult, (void)walker;
        return false;
    }
}

// Concrete dropout's backward over one segment of a sum chunk (docs/rng.md 13.3, engine.cpp):
// dx[e] = g[e] * m_e with m_e = kappa[e] * scale32, and the binary64 summand
// v_e = ((g[e] * x[e]) * m_e) * (p - z_e * inv_t), z_e = 1 - kappa[e], added to the lane
// accumulator acc[(lane0 + e) % 16] in increasing e (section 15). Whole groups of 16 lanes go
// through a loop the compiler vectorizes (each lane still adds its summands in order); dx may
// be g (each g[e] is read before dx[e] is written).
template <class T>
void concrete_grad(const T* g, const T* x, T* dx, std::size_t len, const float* kappa, float scale32, double p,
                   double inv_t, unsigned lane0, double* acc) {
    using C = Compute<T>;
    // the summand of element e, its multiplier in m
    auto term = [&](std::size_t e, float& m) {
        m = kappa[e] * scale32;
        const float z = 1.0f - kappa[e];
        const double phi = p - static_cast<double>(z) * inv_t;
        return ((static_cast<double>(C::in(g[e])) * static_cast<double>(C::in(x[e]))) * static_cast<double>(m)) * phi;
    };
    auto one = [&](std::size_t e) {
        float m;
        acc[(lane0 + e) % 16] += term(e, m);
        dx[e] = mul_m_any(g[e], m);
    };
    std::size_t e = 0;
    for (; e < len && (lane0 + e) % 16 != 0; ++e) one(e);
    for (; e + 16 <= len; e += 16) {
        double v[16];
        float m[16];
        for (int j = 0; j < 16; ++j) v[j] = term(e + j, m[j]);
        for (int j = 0; j < 16; ++j) dx[e + j] = mul_m_any(g[e + j], m[j]);
        for (int j = 0; j < 16; ++j) acc[j] += v[j];
    }
    for (; e < len; ++e) one(e);
}

template <class T>
void concrete_grad_entry(const T* g, const T* x, T* dx, std::size_t len, const float* kappa,
                         const ConcreteBackward& c, unsigned lane0, double* acc) {
    concrete_grad(g, x, dx, len, kappa, c.scale32, c.p, c.inv_t, lane0, acc);
}

// The table's entry points: OpSpec in, the loops above.
template <class T>
void run_ops(const T* x, T* y, std::size_t len, const OpSpec& spec, const std::uint8_t* keep, const float* mult,
             std::uint64_t step) {
    apply_run(x, y, len, Op<typename Compute<T>::CT>(spec), keep, mult, step);
}

// Runs r0 .. r1 - 1 of a broadcast apply (dropkit.hpp RunMap), the noise at noise size in keep
// (bytes) or mult (multipliers; keep is then null).
template <class Isa, class T>
void run_runs(const T* x, T* y, std::size_t r0, std::size_t r1, const RunMap& rm, const OpSpec& spec,
              const std::uint8_t* keep, const float* mult) {
    const Op<typename Compute<T>::CT> op(spec);
    RunWalker at(rm, r0);
    if (rm.nt && rm.step == 0 && stream_runs<Isa>(x, y, r0, r1, rm, op, keep, mult, at)) {
        if constexpr (HasLanes<Isa, T>::value) Isa::fence();  // order the streaming stores
        return;
    }
    for (std::size_t q = r0; q < r1; ++q) {
        const T* xr = x + q * rm.len;
        T* yr = y + q * rm.len;
        const auto b = static_cast<std::size_t>(at.base);
        if (rm.step == 0) {
            const bool kept = keep == nullptr || keep[b] != 0;
            const float mu = mult != nullptr ? mult[b] : 0.0f;
            apply_const(xr, yr, rm.len, op, kept, mu);
        } else {
            apply_run(xr, yr, rm.len, op, keep != nullptr ? keep + b : nullptr, mult != nullptr ? mult + b : nullptr,
                      rm.step);
        }
        at.next();
    }
}

// Runs r0 .. r1 - 1 of rate arrays over a position map (isa_table.hpp RateRunMap; docs/rng.md
// sections 8 and 9): element j of run r is kept iff u(pos) >= t, u read from u[base(r) + j * step
// - u0] (the uniforms of a window of positions starting u0 after the call's offset), and becomes
// x * s (s rounded once to the compute type) or +0. A threshold of 2^32 is above every u (always
// dropped), 0 below none (always kept). Portable loops: this combination is rare.
template <class T>
void rate_runs(const T* x, T* y, std::size_t r0, std::size_t r1, const RateRunMap& m, const std::uint32_t* u,
               std::uint64_t u0) {
    using CT = typename Compute<T>::CT;
    std::int64_t idx[kMaxRunDims];
    std::uint64_t pb = 0;  // run position, threshold and scale offsets
    std::int64_t tb = 0, sb = 0;
    std::size_t r = r0;
    for (int d = m.outer - 1; d >= 0; --d) {
        idx[d] = static_cast<std::int64_t>(r % static_cast<std::size_t>(m.shape[d]));
        pb += static_cast<std::uint64_t>(idx[d]) * m.ps[d];
        tb += idx[d] * m.ts[d];
        sb += idx[d] * m.ss[d];
        r /= static_cast<std::size_t>(m.shape[d]);
    }
    const std::size_t st = static_cast<std::size_t>(m.step);
    for (std::size_t q = r0; q < r1; ++q) {
        const T* xr = x + q * m.len;  // xr may be yr (in place): element j is read before it is written
        T* yr = y + q * m.len;
        const std::uint32_t* ur = u + static_cast<std::size_t>(pb - u0);
        for (std::size_t j = 0; j < m.len; ++j) {
            const auto jj = static_cast<std::int64_t>(j);
            const bool keep = std::uint64_t{ur[j * st]} >= m.t[tb + jj * m.tstep];
            yr[j] = mul_keep(xr[j], static_cast<CT>(m.s[sb + jj * m.sstep]), keep);
        }
        for (int d = m.outer - 1; d >= 0; --d) {  // the next run's outer multi-index
            pb += m.ps[d];
            tb += m.ts[d];
            sb += m.ss[d];
            if (++idx[d] < m.shape[d]) break;
            pb -= static_cast<std::uint64_t>(idx[d]) * m.ps[d];
            tb -= idx[d] * m.ts[d];
            sb -= idx[d] * m.ss[d];
            idx[d] = 0;
        }
    }
}

}  // namespace DROPKIT_ISA_NS
}  // namespace dropkit
