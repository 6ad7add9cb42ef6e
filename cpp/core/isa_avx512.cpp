// AVX-512 (F, BW, VL): sixteen Philox lanes, so a tile is 16 blocks = 2048 positions; keep bits
// become write masks directly. Compiled with AVX-512 flags only in this file.
#include <immintrin.h>

#define DROPKIT_ISA_NS isa_avx512
#include "core/simd_kernels.hpp"

namespace dropkit {
namespace isa_avx512 {

struct Isa {
    static constexpr int G = 2;
    static constexpr int W = 16;
    using V = __m512i;
    static V set1(std::uint32_t a) { return _mm512_set1_epi32(static_cast<int>(a)); }
    static V load(const std::uint32_t* p) { return _mm512_loadu_si512(p); }
    static void store(std::uint32_t* p, V v) { _mm512_storeu_si512(p, v); }
    static V zero() { return _mm512_setzero_si512(); }
    static V ones() { return _mm512_set1_epi32(-1); }
    static V add(V a, V b) { return _mm512_add_epi32(a, b); }
    static V bxor(V a, V b) { return _mm512_xor_si512(a, b); }
    static V band(V a, V b) { return _mm512_and_si512(a, b); }
    static V bor(V a, V b) { return _mm512_or_si512(a, b); }
    static V bandnot(V a, V b) { return _mm512_andnot_si512(a, b); }
    // One vpternlogd (0x96: a ^ b ^ c) instead of two xors.
    static V xor3(V a, V b, V c) { return _mm512_ternarylogic_epi32(a, b, c, 0x96); }
    // 32x32 -> 64-bit products: vpmuludq gives the even lanes' products in 64-bit lanes; the odd
    // lanes' come from a second vpmuludq on the pair-swapped input. One masked pair swap
    // (vpshufd with a write mask) then picks each half: 5 instructions instead of 7.
    static void mulhilo(V a, std::uint32_t m, V& hi, V& lo) {
        const V vm = set1(m);
        const V even = _mm512_mul_epu32(a, vm);                                // (lo, hi) of lanes 0, 2, ...
        const V odd = _mm512_mul_epu32(_mm512_shuffle_epi32(a, _MM_PERM_CDAB), vm);  // of lanes 1, 3, ...
        hi = _mm512_mask_shuffle_epi32(odd, 0x5555, even, _MM_PERM_CDAB);
        lo = _mm512_mask_shuffle_epi32(even, 0xAAAA, odd, _MM_PERM_CDAB);
    }
    // float operations (noise.hpp)
    using F = __m512;
    static F fset1(float a) { return _mm512_set1_ps(a); }
    static F fadd(F a, F b) { return _mm512_add_ps(a, b); }
    static F fsub(F a, F b) { return _mm512_sub_ps(a, b); }
    static F fmul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F fdiv(F a, F b) { return _mm512_div_ps(a, b); }
    static F fsqrt(F a) { return _mm512_sqrt_ps(a); }
    static F fmin(F a, F b) { return _mm512_min_ps(a, b); }
    static F fmax(F a, F b) { return _mm512_max_ps(a, b); }
    static F i2f(V v) { return _mm512_cvtepi32_ps(v); }
    static V f2i(F f) { return _mm512_cvttps_epi32(f); }
    static F as_f(V v) { return _mm512_castsi512_ps(v); }
    static V as_i(F f) { return _mm512_castps_si512(f); }
    static V sub(V a, V b) { return _mm512_sub_epi32(a, b); }
    template <int N>
    static V srli(V v) { return _mm512_srli_epi32(v, N); }
    template <int N>
    static V slli(V v) { return _mm512_slli_epi32(v, N); }
    static void fstore(float* p, F v) { _mm512_storeu_ps(p, v); }
    static bool all_zero(const V (&v)[4]) {
        const V o = _mm512_or_si512(_mm512_or_si512(v[0], v[1]), _mm512_or_si512(v[2], v[3]));
        return _mm512_test_epi32_mask(o, o) == 0;
    }

    // 16 keep bits starting at bit p.
    static std::uint32_t bits_at(const std::uint8_t* bits, std::size_t p) {
        std::uint32_t four;
        std::memcpy(&four, bits + (p >> 3), sizeof four);
        return four >> (p & 7);
    }

    // Lane policies of the one SIMD apply loop (simd_kernels.hpp, apply_lanes): N elements per step,
    // keep bits as a write mask (dropped lanes +0), the tail by masked loads and stores.
    template <class T>
    struct Lanes;

    // A loaded vector the compiler may not fold back into the masked multiply as a memory operand
    // (`vmulps (mem), zmm, zmm{k}{z}`): such a folded load is a masked load (it suppresses faults
    // on masked-off lanes), which AMD Zen 5 runs far slower out of cache (docs/performance.md).
    template <class Vec>
    static Vec unfolded(Vec v) {
        asm("" : "+v"(v));
        return v;
    }

    // out[4 * l + j] = v[j][l]: four multipliers per Philox call into position order (16 shuffles
    // instead of 64 scalar moves).
    static void transpose4(const F (&v)[4], float* out) {
        const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
        const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
        // u_k: in each 128-bit lane L, the four values of call 4L + k
        const __m512 u0 = _mm512_shuffle_ps(t0, t2, 0x44), u1 = _mm512_shuffle_ps(t0, t2, 0xEE);
        const __m512 u2 = _mm512_shuffle_ps(t1, t3, 0x44), u3 = _mm512_shuffle_ps(t1, t3, 0xEE);
        const __m512 a = _mm512_shuffle_f32x4(u0, u1, 0x44), b = _mm512_shuffle_f32x4(u2, u3, 0x44);
        const __m512 c = _mm512_shuffle_f32x4(u0, u1, 0xEE), d = _mm512_shuffle_f32x4(u2, u3, 0xEE);
        _mm512_storeu_ps(out, _mm512_shuffle_f32x4(a, b, 0x88));
        _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(a, b, 0xDD));
        _mm512_storeu_ps(out + 32, _mm512_shuffle_f32x4(c, d, 0x88));
        _mm512_storeu_ps(out + 48, _mm512_shuffle_f32x4(c, d, 0xDD));
    }

    // out[k] bit j = bit (31 - p) of t32[32k + j]: one vptestmd per 16 thresholds.
    static void plane_bits(const std::uint32_t* t32, int p, std::uint32_t* out, std::size_t nwords) {
        const V bit = set1(1u << (31 - p));
        for (std::size_t k = 0; k < nwords; ++k) {
            const std::uint32_t lo = _mm512_test_epi32_mask(load(t32 + 32 * k), bit);
            const std::uint32_t hi = _mm512_test_epi32_mask(load(t32 + 32 * k + 16), bit);
            out[k] = lo | (hi << 16);
        }
    }

    // Keep bits to bytes in {0, 1}, 32 at a time (one masked byte move each); the tail is the
    // skeleton's.
    static std::size_t bytes(std::uint8_t* out, std::size_t count, const std::uint8_t* bits, unsigned bit0) {
        const __m256i one = _mm256_set1_epi8(1);
        std::size_t e = 0;
        for (; e + 32 <= count; e += 32) {
            std::uint64_t eight;
            std::memcpy(&eight, bits + ((bit0 + e) >> 3), sizeof eight);
            const auto k = static_cast<__mmask32>(eight >> ((bit0 + e) & 7));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + e), _mm256_maskz_mov_epi8(k, one));
        }
        return e;
    }
    static void fence() { _mm_sfence(); }
};

// Shared by the three: load through unfolded(), keep bits as a mask, masked tail.
template <class Self, class T, class K>
struct MaskedLanes {
    using Keep = K;
    static constexpr bool kMaskedTail = true;
    static Keep keep(const std::uint8_t* bits, std::size_t p) { return static_cast<K>(Isa::bits_at(bits, p)); }
    template <class Scale>
    static void tail(const T* x, T* y, std::size_t n, Keep k, Scale vs) {
        const auto io = static_cast<K>((1u << n) - 1u);
        Self::store(y, io, Self::compute(Self::load(io, x), vs, k));
    }
};

template <>
struct Isa::Lanes<float> : MaskedLanes<Isa::Lanes<float>, float, __mmask16> {
    using T = float;
    static constexpr std::size_t N = 16, kAlign = 64;
    static __m512 splat(float s) { return _mm512_set1_ps(s); }
    static __m512 load(const T* x) { return unfolded(_mm512_loadu_ps(x)); }
    static __m512 load(__mmask16 io, const T* x) { return _mm512_maskz_loadu_ps(io, x); }
    static __m512 compute(__m512 v, __m512 vs, __mmask16 k) { return _mm512_maskz_mul_ps(k, v, vs); }
    static __m512 affine(__m512 v, __m512 va, __m512 vb, __m512 vfill, __mmask16 k) {
        return _mm512_mask_blend_ps(k, vfill, _mm512_add_ps(_mm512_mul_ps(v, va), vb));
    }
    static void store(T* y, __m512 v) { _mm512_storeu_ps(y, v); }
    static void store(T* y, __mmask16 io, __m512 v) { _mm512_mask_storeu_ps(y, io, v); }
    static void stream(T* y, __m512 v) { _mm512_stream_ps(y, v); }
};
template <>
struct Isa::Lanes<double> : MaskedLanes<Isa::Lanes<double>, double, __mmask8> {
    using T = double;
    static constexpr std::size_t N = 8, kAlign = 64;
    static __m512d splat(double s) { return _mm512_set1_pd(s); }
    static __m512d load(const T* x) { return unfolded(_mm512_loadu_pd(x)); }
    static __m512d load(__mmask8 io, const T* x) { return _mm512_maskz_loadu_pd(io, x); }
    static __m512d compute(__m512d v, __m512d vs, __mmask8 k) { return _mm512_maskz_mul_pd(k, v, vs); }
    static __m512d affine(__m512d v, __m512d va, __m512d vb, __m512d vfill, __mmask8 k) {
        return _mm512_mask_blend_pd(k, vfill, _mm512_add_pd(_mm512_mul_pd(v, va), vb));
    }
    static void store(T* y, __m512d v) { _mm512_storeu_pd(y, v); }
    static void store(T* y, __mmask8 io, __m512d v) { _mm512_mask_storeu_pd(y, io, v); }
    static void stream(T* y, __m512d v) { _mm512_stream_pd(y, v); }
};
template <>  // float16 bits, computed in float32
struct Isa::Lanes<std::uint16_t>
    : MaskedLanes<Isa::Lanes<std::uint16_t>, std::uint16_t, __mmask16> {
    using T = std::uint16_t;
    static constexpr std::size_t N = 16, kAlign = 32;
    static __m512 splat(float s) { return _mm512_set1_ps(s); }
    static __m512 load(const T* x) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x))); }
    static __m512 load(__mmask16 io, const T* x) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(io, x)); }
    static __m256i compute(__m512 v, __m512 vs, __mmask16 k) {
        return _mm512_cvtps_ph(_mm512_maskz_mul_ps(k, v, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    static void store(T* y, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), v); }
    static void store(T* y, __mmask16 io, __m256i v) { _mm256_mask_storeu_epi16(y, io, v); }
    static void stream(T* y, __m256i v) { _mm256_stream_si256(reinterpret_cast<__m256i*>(y), v); }
};

}  // namespace isa_avx512

const KernelTable& kernels_avx512() {
    static const KernelTable table = isa_avx512::make_table<isa_avx512::Isa>("avx512");
    return table;
}

}  // namespace dropkit
