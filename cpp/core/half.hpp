// IEEE binary16 <-> binary32 conversions in portable code, bit-identical to the x86 F16C
// instructions (vcvtph2ps, vcvtps2ph with round-to-nearest-even). The tests compare them with
// NumPy over all 65536 half values. `static`: every SIMD translation unit keeps its own copy.
#pragma once
#include <cstdint>
#include <cstring>

namespace dropkit {

static inline float bits_to_float(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
static inline std::uint32_t float_to_bits(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

static inline float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1Fu;
    const std::uint32_t man = h & 0x3FFu;
    if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in binary32
        const float mag = static_cast<float>(man) * bits_to_float(0x33800000u);  // 2^-24
        return bits_to_float(sign | float_to_bits(mag));
    }
    if (exp == 31)  // infinity, or NaN made quiet as F16C does
        return bits_to_float(sign | 0x7F800000u | (man << 13) | (man ? 0x00400000u : 0u));
    return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline std::uint16_t float_to_half(float f) {
    const std::uint32_t u = float_to_bits(f);
    const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
    std::uint32_t a = u & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) {  // infinity or NaN (quiet, payload truncated)
        if (a == 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
        return static_cast<std::uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
    }
    if (a >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520: overflow
    if (a < 0x38800000u) {  // below 2^-14: a subnormal half; let the FPU round at 2^-24
        const float r = bits_to_float(a) + 0.5f;
        return static_cast<std::uint16_t>(sign | (float_to_bits(r) - 0x3F000000u));
    }
    const std::uint32_t odd = (a >> 13) & 1u;  // round to nearest, ties to even
    a += 0xC8000FFFu + odd;                    // rebias exponent (-112 << 23) and round
    return static_cast<std::uint16_t>(sign | (a >> 13));
}

}  // namespace dropkit
