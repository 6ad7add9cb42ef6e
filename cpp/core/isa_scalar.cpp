// The portable target: one lane of plain uint32 arithmetic. Same skeleton, same bits.
#define DROPKIT_ISA_NS isa_scalar
#include "core/isa_table.hpp"
#include "core/simd_kernels.hpp"

#include <cmath>

namespace dropkit {
namespace isa_scalar {

struct Isa {
    static constexpr int G = 2;
    static constexpr int W = 1;
    using V = std::uint32_t;
    static V set1(std::uint32_t a) { return a; }
    static V load(const std::uint32_t* p) { return *p; }
    static void store(std::uint32_t* p, V v) { *p = v; }
    static V zero() { return 0u; }
    static V ones() { return ~0u; }
    static V add(V a, V b) { return a + b; }
    static V bxor(V a, V b) { return a ^ b; }
    static V band(V a, V b) { return a & b; }
    static V bor(V a, V b) { return a | b; }
    static V bandnot(V a, V b) { return ~a & b; }
    static V xor3(V a, V b, V c) { return a ^ b ^ c; }
    static void mulhilo(V a, std::uint32_t m, V& hi, V& lo) {
        const std::uint64_t p = std::uint64_t{a} * m;
        hi = static_cast<V>(p >> 32);
        lo = static_cast<V>(p);
    }
    // float operations (noise.hpp)
    using F = float;
    static F fset1(float a) { return a; }
    static F fadd(F a, F b) { return a + b; }
    static F fsub(F a, F b) { return a - b; }
    static F fmul(F a, F b) { return a * b; }
    static F fdiv(F a, F b) { return a / b; }
    static F fsqrt(F a) { return std::sqrt(a); }
    static F fmin(F a, F b) { return b < a ? b : a; }
    static F fmax(F a, F b) { return a < b ? b : a; }
    static F i2f(V v) { return static_cast<float>(static_cast<std::int32_t>(v)); }
    static V f2i(F f) { return static_cast<V>(static_cast<std::int32_t>(f)); }
    static F as_f(V v) { return bits_to_float(v); }
    static V as_i(F f) { return float_to_bits(f); }
    static V sub(V a, V b) { return a - b; }
    template <int N>
    static V srli(V v) { return v >> N; }
    template <int N>
    static V slli(V v) { return v << N; }
    static void fstore(float* p, F v) { *p = v; }
    static bool all_zero(const V (&v)[4]) { return (v[0] | v[1] | v[2] | v[3]) == 0; }
    static void fence() {}
};

}  // namespace isa_scalar

const KernelTable& kernels_scalar() {
    static const KernelTable table = isa_scalar::make_table<isa_scalar::Isa>("scalar");
    return table;
}

}  // namespace dropkit
