// The function table each SIMD target fills from the skeleton; dispatch.cpp picks one at run time.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/kernels.hpp"

namespace dropkit {

struct KernelTable {
    const char* name;
    void (*philox)(const std::uint32_t* ctr, const std::uint32_t* key, std::uint32_t* out, std::size_t n);
    void (*apply_f32)(const float* x, float* y, std::size_t i0, std::size_t i1, std::uint64_t t,
                      float s, std::uint64_t seed, std::uint64_t offset, bool nt);
    void (*apply_f64)(const double* x, double* y, std::size_t i0, std::size_t i1, std::uint64_t t,
                      double s, std::uint64_t seed, std::uint64_t offset, bool nt);
    void (*apply_f16)(const std::uint16_t* x, std::uint16_t* y, std::size_t i0, std::size_t i1,
                      std::uint64_t t, float s, std::uint64_t seed, std::uint64_t offset, bool nt);
    void (*mask_bytes)(std::uint8_t* out, std::size_t i0, std::size_t i1, std::uint64_t t,
                       std::uint64_t seed, std::uint64_t offset);
    void (*mask_packed)(std::uint8_t* out, std::size_t i0, std::size_t i1, std::uint64_t t,
                        std::uint64_t seed, std::uint64_t offset);
    void (*continuous_f32)(const float* x, float* y, std::size_t i0, std::size_t i1,
                           const ContinuousNoise& p, std::uint64_t seed, std::uint64_t offset);
    void (*continuous_f64)(const double* x, double* y, std::size_t i0, std::size_t i1,
                           const ContinuousNoise& p, std::uint64_t seed, std::uint64_t offset);
    void (*continuous_f16)(const std::uint16_t* x, std::uint16_t* y, std::size_t i0, std::size_t i1,
                           const ContinuousNoise& p, std::uint64_t seed, std::uint64_t offset);
    void (*continuous_noise)(float* out, std::size_t i0, std::size_t i1, const ContinuousNoise& p,
                             std::uint64_t seed, std::uint64_t offset);
    void (*rates_f32)(const float* x, float* y, std::size_t i0, std::size_t i1, const RateArrays& r,
                      std::uint64_t seed, std::uint64_t offset);
    void (*rates_f64)(const double* x, double* y, std::size_t i0, std::size_t i1, const RateArrays& r,
                      std::uint64_t seed, std::uint64_t offset);
    void (*rates_f16)(const std::uint16_t* x, std::uint16_t* y, std::size_t i0, std::size_t i1,
                      const RateArrays& r, std::uint64_t seed, std::uint64_t offset);
    // y[j] = op(x[j], keep[j * step] or mult[j * step])
    void (*ops_f32)(const float* x, float* y, std::size_t len, const OpSpec& op, const std::uint8_t* keep,
                    const float* mult, std::uint64_t step);
    void (*ops_f64)(const double* x, double* y, std::size_t len, const OpSpec& op, const std::uint8_t* keep,
                    const float* mult, std::uint64_t step);
    void (*ops_f16)(const std::uint16_t* x, std::uint16_t* y, std::size_t len, const OpSpec& op,
                    const std::uint8_t* keep, const float* mult, std::uint64_t step);
    // runs r0 .. r1 - 1 of a broadcast apply
    void (*runs_f32)(const float* x, float* y, std::size_t r0, std::size_t r1, const RunMap& rm, const OpSpec& op,
                     const std::uint8_t* keep, const float* mult);
    void (*runs_f64)(const double* x, double* y, std::size_t r0, std::size_t r1, const RunMap& rm, const OpSpec& op,
                     const std::uint8_t* keep, const float* mult);
    void (*runs_f16)(const std::uint16_t* x, std::uint16_t* y, std::size_t r0, std::size_t r1, const RunMap& rm,
                     const OpSpec& op, const std::uint8_t* keep, const float* mult);
};

const KernelTable& kernels_scalar();
const KernelTable& kernels_avx2();    // only when built with DROPKIT_HAVE_AVX2
const KernelTable& kernels_avx512();  // only when built with DROPKIT_HAVE_AVX512

}  // namespace dropkit
