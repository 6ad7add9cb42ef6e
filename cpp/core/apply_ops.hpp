// What an element becomes (kernels.hpp OpSpec), written once and compiled by every SIMD target
// (included from skeleton.hpp inside the target's namespace, so that each target's loops are
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
    }
}

// A broadcast run (one noise value for the whole run): the constant forms.
template <class T>
void apply_const(const T* x, T* y, std::size_t len, const Op<typename Compute<T>::CT>& op, bool keep, float mult) {
    using C = Compute<T>;
    using CT = typename C::CT;
    const CT a = op.a, b = op.b, fill = op.fill;
    if (op.kind == OpKind::multiply) {
        const CT m = static_cast<CT>(mult);
        for (std::size_t j = 0; j < len; ++j) y[j] = C::out(C::in(x[j]) * m);
    } else if (!keep) {
        const T f = C::out(op.kind == OpKind::scale ? CT(0) : fill);
        for (std::size_t j = 0; j < len; ++j) y[j] = f;
    } else if (op.kind == OpKind::scale) {
        for (std::size_t j = 0; j < len; ++j) y[j] = C::out(C::in(x[j]) * a);
    } else {
        for (std::size_t j = 0; j < len; ++j) y[j] = C::out((C::in(x[j]) * a) + b);
    }
}

// A broadcast run of the scale or multiply form with streaming stores (targets with Lanes<T>):
// keep ? x * s : +0 through the target's apply lanes, the same IEEE operations as apply_const
// (`x * m` is the kept form with s = m). The input of a dropped run is read all the same and the
// keep decision is a lane mask, not a branch: skipping the reads of dropped runs at random breaks
// the hardware prefetcher's streams, and at rate 0.5 that cost 1.7x np.multiply at 2^24 against
// 1.1x this way (bench spatial2d). Returns false for the affine form (apply_affine_const's).
template <class Isa, class T>
bool stream_const(const T* x, T* y, std::size_t len, const Op<typename Compute<T>::CT>& op, bool keep, float mult) {
    if constexpr (HasLanes<Isa, T>::value) {
        using L = typename Isa::template Lanes<T>;
        using CT = typename Compute<T>::CT;
        if (op.kind == OpKind::affine) return false;
        static const std::uint8_t bytes[2][8] = {{0, 0, 0, 0, 0, 0, 0, 0},
                                                 {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}};
        const bool on = keep || op.kind == OpKind::multiply;
        const auto k = L::keep(bytes[on ? 1 : 0], 0);
        const auto vs = L::splat(op.kind == OpKind::multiply ? static_cast<CT>(mult) : op.a);
        std::size_t e = 0;
        for (; e < len && reinterpret_cast<std::uintptr_t>(y + e) % L::kAlign != 0; ++e) {}
        const std::size_t head = e;
        for (; e + L::N <= len; e += L::N) L::stream(y + e, L::compute(L::load(x + e), vs, k));
        if (head != 0) apply_const(x, y, head, op, keep, mult);
        if (e != len) apply_const(x + e, y + e, len - e, op, keep, mult);
        return true;
    } else {
        (void)x, (void)y, (void)len, (void)op, (void)keep, (void)mult;
        return false;
    }
}

// The affine form of a broadcast run without a branch on keep: (x * a) + b or the fill, selected
// lane by lane (the input is read either way, for the reason above).
template <class T>
void affine_const(const T* x, T* y, std::size_t len, const Op<typename Compute<T>::CT>& op, bool keep) {
    using C = Compute<T>;
    const auto a = op.a, b = op.b, fill = op.fill;
    for (std::size_t j = 0; j < len; ++j) y[j] = C::out(pick(keep, (C::in(x[j]) * a) + b, fill));
}

// The table's entry points: OpSpec in, the loops above.
template <class T>
void run_ops(const T* x, T* y, std::size_t len, const OpSpec& spec, const std::uint8_t* keep, const float* mult,
             std::uint64_t step) {
    apply_run(x, y, len, Op<typename Compute<T>::CT>(spec), keep, mult, step);
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

// Runs r0 .. r1 - 1 of a broadcast apply (kernels.hpp RunMap), the noise at noise size in keep
// (bytes) or mult (multipliers; keep is then null).
template <class Isa, class T>
void run_runs(const T* x, T* y, std::size_t r0, std::size_t r1, const RunMap& rm, const OpSpec& spec,
              const std::uint8_t* keep, const float* mult) {
    const Op<typename Compute<T>::CT> op(spec);
    RunWalker at(rm, r0);
    for (std::size_t q = r0; q < r1; ++q) {
        const T* xr = x + q * rm.len;
        T* yr = y + q * rm.len;
        const auto b = static_cast<std::size_t>(at.base);
        if (rm.step == 0) {
            const bool kept = keep == nullptr || keep[b] != 0;
            const float mu = mult != nullptr ? mult[b] : 0.0f;
            if (rm.nt && stream_const<Isa>(xr, yr, rm.len, op, kept, mu)) {
            } else if (op.kind == OpKind::affine) {
                affine_const(xr, yr, rm.len, op, kept);
            } else {
                apply_const(xr, yr, rm.len, op, kept, mu);
            }
        } else {
            apply_run(xr, yr, rm.len, op, keep != nullptr ? keep + b : nullptr, mult != nullptr ? mult + b : nullptr,
                      rm.step);
        }
        at.next();
    }
    if constexpr (HasLanes<Isa, T>::value) {
        if (rm.nt) Isa::fence();  // order the streaming stores before anything that follows
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
