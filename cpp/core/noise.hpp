// Continuous noise of the stream kind 1 (docs/rng.md sections 10-13), written once against the
// float operations of the `Isa` traits, so that the scalar, AVX2 and AVX-512 targets run the same
// sequence of IEEE binary32 operations as the NumPy reference (no FMA: -ffp-contract=off).
// Include from simd_kernels.hpp only.
//
// Isa provides, besides the integer operations of simd_kernels.hpp:
//   using F;                       W lanes of float
//   F fset1(float), F fadd(F, F), F fsub(F, F), F fmul(F, F), F fdiv(F, F), F fsqrt(F)
//   F fmin(F, F), F fmax(F, F)     (for finite arguments)
//   F i2f(V)                       signed 32-bit integers (below 2^24 in magnitude) to float
//   V f2i(F)                       integer-valued floats to signed 32-bit integers
//   F as_f(V), V as_i(F)           bit casts
//   V sub(V, V)                    lane-wise, mod 2^32
//   template <int N> V srli(V), template <int N> V slli(V)
//   void fstore(float*, F)         unaligned
#pragma once

namespace dropkit {
namespace DROPKIT_ISA_NS {

template <class Isa>
struct Noise {
    using V = typename Isa::V;
    using F = typename Isa::F;

    static F c(std::uint32_t bits) { return Isa::fset1(bits_to_float(bits)); }
    static V k(std::uint32_t v) { return Isa::set1(v); }
    // mask ? a : b, mask all-ones or all-zeros per lane
    static F select(V mask, F a, F b) {
        return Isa::as_f(Isa::bor(Isa::band(mask, Isa::as_i(a)), Isa::bandnot(mask, Isa::as_i(b))));
    }

    // Section 10: U(w) = (w >> 9) * 2^-23 + 2^-24.
    static F uniform(V w) {
        return Isa::fadd(Isa::fmul(Isa::i2f(Isa::template srli<9>(w)), c(0x34000000u)), c(0x33800000u));
    }

    // Section 11.1.
    static F log_f32(F v) {
        const V ix = Isa::add(Isa::as_i(v), k(0x3F800000u - 0x3F3504F3u));
        const V ki = Isa::sub(Isa::template srli<23>(ix), k(127u));
        const F m = Isa::as_f(Isa::add(Isa::band(ix, k(0x007FFFFFu)), k(0x3F3504F3u)));
        const F f = Isa::fsub(m, c(0x3F800000u));
        const F s = Isa::fdiv(f, Isa::fadd(c(0x40000000u), f));
        const F z = Isa::fmul(s, s);
        const F w = Isa::fmul(z, z);
        const F t1 = Isa::fmul(w, Isa::fadd(c(0x3ECCCE13u), Isa::fmul(w, c(0x3E789E26u))));
        const F t2 = Isa::fmul(z, Isa::fadd(c(0x3F2AAAAAu), Isa::fmul(w, c(0x3E91E9EEu))));
        const F r = Isa::fadd(t2, t1);
        const F hfsq = Isa::fmul(Isa::fmul(c(0x3F000000u), f), f);
        const F dk = Isa::i2f(ki);
        F acc = Isa::fmul(s, Isa::fadd(hfsq, r));
        acc = Isa::fadd(acc, Isa::fmul(dk, c(0x3717F7D1u)));
        acc = Isa::fsub(acc, hfsq);
        acc = Isa::fadd(acc, f);
        return Isa::fadd(acc, Isa::fmul(dk, c(0x3F317180u)));
    }

    // Section 11.2, for a in [-64, 64].
    static F exp_f32(F a) {
        const F shift = c(0x4B400000u);
        const F nf = Isa::fsub(Isa::fadd(Isa::fmul(a, c(0x3FB8AA3Bu)), shift), shift);
        const F r = Isa::fsub(Isa::fsub(a, Isa::fmul(nf, c(0x3F318000u))), Isa::fmul(nf, c(0xB95E8083u)));
        const F z = Isa::fmul(r, r);
        F p = c(0x39506967u);
        p = Isa::fadd(Isa::fmul(p, r), c(0x3AB743CEu));
        p = Isa::fadd(Isa::fmul(p, r), c(0x3C088908u));
        p = Isa::fadd(Isa::fmul(p, r), c(0x3D2AA9C1u));
        p = Isa::fadd(Isa::fmul(p, r), c(0x3E2AAAAAu));
        p = Isa::fadd(Isa::fmul(p, r), c(0x3F000000u));
        const F e = Isa::fadd(Isa::fadd(Isa::fmul(p, z), r), c(0x3F800000u));
        const V n = Isa::f2i(nf);
        return Isa::fmul(e, Isa::as_f(Isa::template slli<23>(Isa::add(n, k(127u)))));
    }

    // Section 11.3: cos and sin of the angle 2*pi*(b >> 7) / 2^25.
    static void sincos(V b0, F& cos_out, F& sin_out) {
        const V b = Isa::add(b0, k(0x20000000u));
        const V quad = Isa::template srli<30>(b);
        const V j = Isa::band(Isa::template srli<7>(b), k(0x007FFFFFu));
        const F t = Isa::fmul(Isa::i2f(Isa::sub(j, k(0x00400000u))), c(0x34000000u));
        const F t2 = Isa::fmul(t, t);
        F s = c(0xBB96C981u);
        s = Isa::fadd(Isa::fmul(s, t2), c(0x3DA32F49u));
        s = Isa::fadd(Isa::fmul(s, t2), c(0xBF255DDDu));
        s = Isa::fadd(Isa::fmul(s, t2), c(0x3FC90FDBu));
        s = Isa::fmul(s, t);
        F cc = c(0x3A6CEABFu);
        cc = Isa::fadd(Isa::fmul(cc, t2), c(0xBCAAE2F0u));
        cc = Isa::fadd(Isa::fmul(cc, t2), c(0x3E81E0EFu));
        cc = Isa::fadd(Isa::fmul(cc, t2), c(0xBF9DE9E6u));
        cc = Isa::fadd(Isa::fmul(cc, t2), c(0x3F800000u));
        // swap where bit 0 of the quadrant is set; sign flips from bits of quad
        const V swap = Isa::sub(Isa::zero(), Isa::band(quad, k(1u)));  // all ones where odd
        const F cv = select(swap, s, cc);
        const F sv = select(swap, cc, s);
        const V neg_cos = Isa::template slli<31>(Isa::template srli<1>(Isa::add(quad, k(1u))));
        const V neg_sin = Isa::template slli<31>(Isa::template srli<1>(quad));
        cos_out = Isa::as_f(Isa::bxor(Isa::as_i(cv), neg_cos));
        sin_out = Isa::as_f(Isa::bxor(Isa::as_i(sv), neg_sin));
    }
};

// Section 12: Gaussian multipliers m = (sigma32 * eps) + 1 (kShift) or additive terms
// n = sigma32 * eps (section 12.3) of the four positions of each Philox call (x0..x3 are the
// call's words in W lanes; out_j gets the value of position 4q + j).
template <bool kShift>
struct NormalNoise {
    float sigma;
    template <class Isa, class V = typename Isa::V, class F = typename Isa::F>
    void operator()(const V (&x)[4], F (&out)[4]) const {
        using N = Noise<Isa>;
        const F minus_two = N::c(0xC0000000u);
        const F one = N::c(0x3F800000u);
        const F sig = Isa::fset1(sigma);
        for (int pair = 0; pair < 2; ++pair) {
            const F rho = Isa::fsqrt(Isa::fmul(minus_two, N::log_f32(N::uniform(x[2 * pair]))));
            F cv, sv;
            N::sincos(x[2 * pair + 1], cv, sv);
            out[2 * pair] = Isa::fmul(sig, Isa::fmul(rho, cv));
            out[2 * pair + 1] = Isa::fmul(sig, Isa::fmul(rho, sv));
            if constexpr (kShift) {
                out[2 * pair] = Isa::fadd(out[2 * pair], one);
                out[2 * pair + 1] = Isa::fadd(out[2 * pair + 1], one);
            }
        }
    }
};
using GaussianNoise = NormalNoise<true>;

// Section 13.2: concrete multipliers m = kappa * scale32 (one word per position).
struct ConcreteNoise {
    float theta, inv_t, scale;
    template <class Isa, class V = typename Isa::V, class F = typename Isa::F>
    void operator()(const V (&x)[4], F (&out)[4]) const {
        using N = Noise<Isa>;
        const F one = N::c(0x3F800000u);
        const F lo = N::c(0xC2800000u), hi = N::c(0x42800000u);  // -64, 64
        for (int j = 0; j < 4; ++j) {
            const F u = N::uniform(x[j]);
            const F v = Isa::fsub(one, u);
            const F lam = Isa::fsub(N::log_f32(u), N::log_f32(v));
            F a = Isa::fmul(Isa::fadd(Isa::fset1(theta), lam), Isa::fset1(inv_t));
            a = Isa::fmin(Isa::fmax(a, lo), hi);
            const F kappa = Isa::fdiv(one, Isa::fadd(one, N::exp_f32(a)));
            out[j] = Isa::fmul(kappa, Isa::fset1(scale));
        }
    }
};

}  // namespace DROPKIT_ISA_NS
}  // namespace dropkit
