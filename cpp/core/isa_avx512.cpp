// AVX-512 (F, BW, VL): sixteen Philox lanes, so a tile is 16 blocks = 2048 positions; keep bits
// become write masks directly. Compiled with AVX-512 flags only in this file.
#include <immintrin.h>

#define DROPKIT_ISA_NS isa_avx512
#include "core/skeleton.hpp"

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
    static void mulhilo(V a, std::uint32_t m, V& hi, V& lo) {
        const V vm = set1(m);
        const V even = _mm512_mul_epu32(a, vm);
        const V odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), vm);
        lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
        hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
    }
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
    static __mmask16 tail16(std::size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
    static __mmask8 tail8(std::size_t n) { return static_cast<__mmask8>((1u << n) - 1u); }

    // Tails (count not a multiple of the width) use masked loads and stores, so this handles all.
    static std::size_t apply(const float* x, float* y, std::size_t count, const std::uint8_t* bits,
                             unsigned bit0, float s) {
        const __m512 vs = _mm512_set1_ps(s);
        std::size_t e = 0;
        for (; e + 16 <= count; e += 16) {  // full vectors: plain loads and stores
            const auto k = static_cast<__mmask16>(bits_at(bits, bit0 + e));
            _mm512_storeu_ps(y + e, _mm512_maskz_mul_ps(k, _mm512_loadu_ps(x + e), vs));
        }
        if (e < count) {  // the tail: masked loads and stores
            const __mmask16 io = tail16(count - e);
            const auto k = static_cast<__mmask16>(bits_at(bits, bit0 + e));
            _mm512_mask_storeu_ps(y + e, io, _mm512_maskz_mul_ps(k, _mm512_maskz_loadu_ps(io, x + e), vs));
        }
        return count;
    }
    static std::size_t apply(const double* x, double* y, std::size_t count, const std::uint8_t* bits,
                             unsigned bit0, double s) {
        const __m512d vs = _mm512_set1_pd(s);
        std::size_t e = 0;
        for (; e + 8 <= count; e += 8) {
            const auto k = static_cast<__mmask8>(bits_at(bits, bit0 + e));
            _mm512_storeu_pd(y + e, _mm512_maskz_mul_pd(k, _mm512_loadu_pd(x + e), vs));
        }
        if (e < count) {
            const __mmask8 io = tail8(count - e);
            const auto k = static_cast<__mmask8>(bits_at(bits, bit0 + e));
            _mm512_mask_storeu_pd(y + e, io, _mm512_maskz_mul_pd(k, _mm512_maskz_loadu_pd(io, x + e), vs));
        }
        return count;
    }
    static std::size_t apply(const std::uint16_t* x, std::uint16_t* y, std::size_t count,
                             const std::uint8_t* bits, unsigned bit0, float s) {
        const __m512 vs = _mm512_set1_ps(s);
        constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        std::size_t e = 0;
        for (; e + 16 <= count; e += 16) {
            const auto k = static_cast<__mmask16>(bits_at(bits, bit0 + e));
            const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + e)));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + e), _mm512_cvtps_ph(_mm512_maskz_mul_ps(k, v, vs), kRound));
        }
        if (e < count) {
            const __mmask16 io = tail16(count - e);
            const auto k = static_cast<__mmask16>(bits_at(bits, bit0 + e));
            const __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(io, x + e));
            _mm256_mask_storeu_epi16(y + e, io, _mm512_cvtps_ph(_mm512_maskz_mul_ps(k, v, vs), kRound));
        }
        return count;
    }
};

}  // namespace isa_avx512

const KernelTable& kernels_avx512() {
    static const KernelTable table = isa_avx512::make_table<isa_avx512::Isa>("avx512");
    return table;
}

}  // namespace dropkit
