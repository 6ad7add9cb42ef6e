// AVX2 (+FMA unused, +F16C): eight Philox lanes, so a tile is 8 blocks = 1024 positions.
// Compiled with -mavx2 -mf16c only in this file; dispatch.cpp calls it only when the CPU has them.
#include <immintrin.h>

#define DROPKIT_ISA_NS isa_avx2
#include "core/simd_kernels.hpp"

namespace dropkit {
namespace isa_avx2 {

struct Isa {
    static constexpr int G = 2;
    static constexpr int W = 8;
    using V = __m256i;
    static V set1(std::uint32_t a) { return _mm256_set1_epi32(static_cast<int>(a)); }
    static V load(const std::uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static void store(std::uint32_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
    static V zero() { return _mm256_setzero_si256(); }
    static V ones() { return _mm256_set1_epi32(-1); }
    static V add(V a, V b) { return _mm256_add_epi32(a, b); }
    static V bxor(V a, V b) { return _mm256_xor_si256(a, b); }
    static V band(V a, V b) { return _mm256_and_si256(a, b); }
    static V bor(V a, V b) { return _mm256_or_si256(a, b); }
    static V bandnot(V a, V b) { return _mm256_andnot_si256(a, b); }
    static V xor3(V a, V b, V c) { return bxor(bxor(a, b), c); }
    static void mulhilo(V a, std::uint32_t m, V& hi, V& lo) {
        const V vm = set1(m);
        const V even = _mm256_mul_epu32(a, vm);                         // lanes 0,2,4,6 -> 64 bit
        const V odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), vm);  // lanes 1,3,5,7
        lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
        hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
    }
    // float operations (noise.hpp)
    using F = __m256;
    static F fset1(float a) { return _mm256_set1_ps(a); }
    static F fadd(F a, F b) { return _mm256_add_ps(a, b); }
    static F fsub(F a, F b) { return _mm256_sub_ps(a, b); }
    static F fmul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F fdiv(F a, F b) { return _mm256_div_ps(a, b); }
    static F fsqrt(F a) { return _mm256_sqrt_ps(a); }
    static F fmin(F a, F b) { return _mm256_min_ps(a, b); }
    static F fmax(F a, F b) { return _mm256_max_ps(a, b); }
    static F i2f(V v) { return _mm256_cvtepi32_ps(v); }
    static V f2i(F f) { return _mm256_cvttps_epi32(f); }
    static F as_f(V v) { return _mm256_castsi256_ps(v); }
    static V as_i(F f) { return _mm256_castps_si256(f); }
    static V sub(V a, V b) { return _mm256_sub_epi32(a, b); }
    template <int N>
    static V srli(V v) { return _mm256_srli_epi32(v, N); }
    template <int N>
    static V slli(V v) { return _mm256_slli_epi32(v, N); }
    static void fstore(float* p, F v) { _mm256_storeu_ps(p, v); }
    static bool all_zero(const V (&v)[4]) {
        const V o = _mm256_or_si256(_mm256_or_si256(v[0], v[1]), _mm256_or_si256(v[2], v[3]));
        return _mm256_testz_si256(o, o) != 0;
    }

    // 8 (or 4) keep bits starting at bit p, as an integer.
    static std::uint32_t bits_at(const std::uint8_t* bits, std::size_t p) {
        std::uint16_t two;
        std::memcpy(&two, bits + (p >> 3), sizeof two);
        return static_cast<std::uint32_t>(two) >> (p & 7);
    }
    static __m256i lane_mask32(std::uint32_t b8) {
        const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(b8 & 0xFFu)), sel), sel);
    }

    // Lane policies of the one SIMD apply loop (simd_kernels.hpp, apply_lanes): N elements per step;
    // compute() gives the stored form of keep ? v * s : +0, keep bits in b (bit 0 first).
    template <class T>
    struct Lanes;
    // out[k] bit j = bit (31 - p) of t32[32k + j]: the bit shifted to the sign, then movemask.
    static void plane_bits(const std::uint32_t* t32, int p, std::uint32_t* out, std::size_t nwords) {
        const __m128i sh = _mm_cvtsi32_si128(p);
        for (std::size_t k = 0; k < nwords; ++k) {
            std::uint32_t w = 0;
            for (int q = 0; q < 4; ++q) {
                const V v = _mm256_sll_epi32(load(t32 + 32 * k + 8 * static_cast<std::size_t>(q)), sh);
                w |= static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(v))) << (8 * q);
            }
            out[k] = w;
        }
    }
    static void fence() { _mm_sfence(); }
};

template <>
struct Isa::Lanes<float> {
    using T = float;
    using Keep = std::uint32_t;
    static constexpr std::size_t N = 8, kAlign = 32;
    static __m256 splat(float s) { return _mm256_set1_ps(s); }
    static __m256 load(const T* x) { return _mm256_loadu_ps(x); }
    static Keep keep(const std::uint8_t* bits, std::size_t p) { return bits_at(bits, p); }
    static __m256 compute(__m256 v, __m256 vs, Keep b) {
        return _mm256_and_ps(_mm256_mul_ps(v, vs), _mm256_castsi256_ps(lane_mask32(b)));
    }
    static __m256 affine(__m256 v, __m256 va, __m256 vb, __m256 vfill, Keep b) {
        return _mm256_blendv_ps(vfill, _mm256_add_ps(_mm256_mul_ps(v, va), vb), _mm256_castsi256_ps(lane_mask32(b)));
    }
    static void store(T* y, __m256 v) { _mm256_storeu_ps(y, v); }
    static void stream(T* y, __m256 v) { _mm256_stream_ps(y, v); }
};
template <>
struct Isa::Lanes<double> {
    using T = double;
    using Keep = std::uint32_t;
    static constexpr std::size_t N = 4, kAlign = 32;
    static __m256d splat(double s) { return _mm256_set1_pd(s); }
    static __m256d load(const T* x) { return _mm256_loadu_pd(x); }
    static Keep keep(const std::uint8_t* bits, std::size_t p) { return bits_at(bits, p); }
    static __m256i lanes(Keep b) {
        const __m256i sel = _mm256_setr_epi64x(1, 2, 4, 8);
        return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(b & 0xFu), sel), sel);
    }
    static __m256d compute(__m256d v, __m256d vs, Keep b) {
        return _mm256_and_pd(_mm256_mul_pd(v, vs), _mm256_castsi256_pd(lanes(b)));
    }
    static __m256d affine(__m256d v, __m256d va, __m256d vb, __m256d vfill, Keep b) {
        return _mm256_blendv_pd(vfill, _mm256_add_pd(_mm256_mul_pd(v, va), vb), _mm256_castsi256_pd(lanes(b)));
    }
    static void store(T* y, __m256d v) { _mm256_storeu_pd(y, v); }
    static void stream(T* y, __m256d v) { _mm256_stream_pd(y, v); }
};
template <>
struct Isa::Lanes<std::uint16_t> {  // float16 bits, computed in float32
    using T = std::uint16_t;
    using Keep = std::uint32_t;
    static constexpr std::size_t N = 8, kAlign = 16;
    static __m256 splat(float s) { return _mm256_set1_ps(s); }
    static __m256 load(const T* x) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x))); }
    static Keep keep(const std::uint8_t* bits, std::size_t p) { return bits_at(bits, p); }
    static __m128i compute(__m256 v, __m256 vs, Keep b) {
        return _mm256_cvtps_ph(_mm256_and_ps(_mm256_mul_ps(v, vs), _mm256_castsi256_ps(lane_mask32(b))),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    static void store(T* y, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(y), v); }
    static void stream(T* y, __m128i v) { _mm_stream_si128(reinterpret_cast<__m128i*>(y), v); }
};

}  // namespace isa_avx2

const KernelTable& kernels_avx2() {
    static const KernelTable table = isa_avx2::make_table<isa_avx2::Isa>("avx2");
    return table;
}

}  // namespace dropkit
