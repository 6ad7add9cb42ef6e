// The function table each SIMD target fills from the skeleton; dispatch.cpp picks one at run time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/dropkit.hpp"

namespace dropkit {

// Rates that vary along x's last axis only (simd_kernels.hpp rates_periodic_range), prepared once per
// call: element i has feature i mod `features`. The thresholds (clamped to 2^32 - 1) are taken
// over one period L = lcm(features, 32) of element indices, shifted by `phase` = offset mod 32 so
// that the 32 positions of a stream word are one word of a plane: word k of plane p has bit j =
// bit (31 - p) of the threshold of feature (32 k + j - phase) mod features (k < L/32). A tile
// reads the words k0 + 4 l + w (l < W, w < 4) without wrapping or gathering, so each plane is
// stored extended past L/32 (word k taken mod L/32) and de-interleaved by k mod 4:
// planes[(4 p + k % 4) * row + k / 4]. never[k] (extended likewise, not de-interleaved) has the
// bits of the thresholds 2^32 (dropped whatever u is); scales32/64[j] = the scale of feature
// j mod features, for j < features + kMaxTile (a tile read from any start).
inline constexpr std::size_t kMaxTile = 2048;     // 128 positions x 16 lanes (AVX-512)
inline constexpr std::size_t kMaxTileWords = 64;  // kMaxTile / 32
struct PeriodicRates {
    std::int64_t features, period, phase;
    std::size_t row;
    const std::uint32_t* planes;
    const std::uint32_t* never;
    const float* scales32;
    const double* scales64;
    bool nt;  // streaming stores (outputs larger than the caches)
};

// Rate arrays over a position map other than the default (docs/rng.md sections 8 and 9): runs of
// `len` elements along the innermost merged axis. Run r's position (relative to the call's offset),
// threshold index and scale index are sums over the outer axes d < outer of idx_d(r) times ps[d],
// ts[d] and ss[d] (idx the outer multi-index of r over shape[0 .. outer)); along a run they step by
// step, tstep and sstep. t and s are the broadcast rate arrays (dropkit.hpp RateArrays).
struct RateRunMap {
    int outer;
    const std::int64_t* shape;
    const std::uint64_t* ps;
    const std::int64_t* ts;
    const std::int64_t* ss;
    std::size_t len;
    std::uint64_t step;
    std::int64_t tstep, sstep;
    const std::uint64_t* t;
    const double* s;
};

// The kernels of one element type T: float, double, or float16 held as its bits (std::uint16_t,
// computed in binary32). S is the type a scale is handed in (the compute type).
template <class T>
struct TypedKernels {
    using S = std::conditional_t<std::is_same<T, double>::value, double, float>;
    // standard dropout, default map: keep ? x * s : +0 (nt: streaming stores)
    void (*apply)(const T* x, T* y, std::size_t i0, std::size_t i1, std::uint64_t t, S s, std::uint64_t seed,
                  std::uint64_t offset, bool nt);
    // continuous noise, default map: x * m (OpKind::multiply) or x + m (OpKind::add)
    void (*continuous)(const T* x, T* y, std::size_t i0, std::size_t i1, const ContinuousNoise& p, OpKind op,
                       std::uint64_t seed, std::uint64_t offset);
    // rate arrays, default map: a threshold and a scale per element through their strides
    void (*rates)(const T* x, T* y, std::size_t i0, std::size_t i1, const RateArrays& r, std::uint64_t seed,
                  std::uint64_t offset);
    // rates that vary along the last axis only (PeriodicRates)
    void (*periodic)(const T* x, T* y, std::size_t i0, std::size_t i1, const PeriodicRates& r, std::uint64_t seed,
                     std::uint64_t offset);
    // alpha dropout, default map: keep ? (x * a) + b : fill (op.kind affine), fused like apply
    void (*affine)(const T* x, T* y, std::size_t i0, std::size_t i1, std::uint64_t t, const OpSpec& op,
                   std::uint64_t seed, std::uint64_t offset, bool nt);
    // concrete backward over a sum segment: dx = g * kappa * scale, summands into acc[(lane0 + e) % 16]
    void (*concrete_grad)(const T* g, const T* x, T* dx, std::size_t len, const float* kappa,
                          const ConcreteBackward& c, unsigned lane0, double* acc);
    // y[j] = op(x[j], keep[j * step] or mult[j * step])
    void (*ops)(const T* x, T* y, std::size_t len, const OpSpec& op, const std::uint8_t* keep, const float* mult,
                std::uint64_t step);
    // runs r0 .. r1 - 1 of a broadcast apply
    void (*runs)(const T* x, T* y, std::size_t r0, std::size_t r1, const RunMap& rm, const OpSpec& op,
                 const std::uint8_t* keep, const float* mult);
    // runs r0 .. r1 - 1 of rate arrays over a position map: u[base(r) + j * step - u0] >= t ? x * s : +0
    void (*rate_runs)(const T* x, T* y, std::size_t r0, std::size_t r1, const RateRunMap& m, const std::uint32_t* u,
                      std::uint64_t u0);
};

// One SIMD target's kernels: the type-free ones, and one TypedKernels per element type (made
// from one template by simd_kernels.hpp make_table, so no dtype is listed by hand).
struct KernelTable {
    const char* name;
    void (*philox)(const std::uint32_t* ctr, const std::uint32_t* key, std::uint32_t* out, std::size_t n);
    void (*mask_bytes)(std::uint8_t* out, std::size_t i0, std::size_t i1, std::uint64_t t,
                       std::uint64_t seed, std::uint64_t offset);
    void (*mask_packed)(std::uint8_t* out, std::size_t i0, std::size_t i1, std::uint64_t t,
                        std::uint64_t seed, std::uint64_t offset);
    void (*continuous_noise)(float* out, std::size_t i0, std::size_t i1, const ContinuousNoise& p,
                             std::uint64_t seed, std::uint64_t offset);
    // out[k] bit j = bit (31 - p) of t32[32 k + j], k < nwords
    void (*plane_bits)(const std::uint32_t* t32, int p, std::uint32_t* out, std::size_t nwords);
    // out[i] = u(offset + i), the full 32-bit uniform of docs/rng.md section 3, for i in [i0, i1)
    void (*uniform_words)(std::uint32_t* out, std::size_t i0, std::size_t i1, std::uint64_t seed,
                          std::uint64_t offset);
    TypedKernels<float> f32;
    TypedKernels<double> f64;
    TypedKernels<std::uint16_t> f16;

    // The kernels of element type T.
    template <class T>
    const TypedKernels<T>& of() const {
        if constexpr (std::is_same<T, float>::value) return f32;
        else if constexpr (std::is_same<T, double>::value) return f64;
        else return f16;
    }
};

const KernelTable& kernels_scalar();
const KernelTable& kernels_avx2();    // only when built with DROPKIT_HAVE_AVX2
const KernelTable& kernels_avx512();  // only when built with DROPKIT_HAVE_AVX512

}  // namespace dropkit
