// The layout of dropkit's random stream (docs/rng.md is the specification; keep them in step).
#pragma once
#include <cstdint>

namespace dropkit {

// Bumped whenever any bit that docs/rng.md defines would change.
inline constexpr int kStreamVersion = 1;

// Positions are grouped in blocks of 128: one Philox call gives one bit plane of one block.
inline constexpr unsigned kBlockBits = 7;
inline constexpr std::uint64_t kBlockSize = std::uint64_t{1} << kBlockBits;
inline constexpr int kPlanes = 32;  // u(g) has 32 bits, plane 0 the most significant
// Fourth counter word: the kind of stream. 0 = Bernoulli bit planes.
inline constexpr std::uint32_t kStreamBernoulli = 0;
// 1 = the continuous stream: 32-bit words, four positions per Philox call (docs/rng.md section 10).
inline constexpr std::uint32_t kStreamContinuous = 1;

// t = round(rate * 2^32) lies in [0, 2^32]; an element is kept iff u(g) >= t.
inline constexpr std::uint64_t kThresholdMax = std::uint64_t{1} << 32;

// (static: each SIMD translation unit gets its own copy, never one built for another target.)
// Number of planes that can change the result for threshold t in (0, 2^32): 32 - ctz(t).
static inline int planes_needed(std::uint64_t t) noexcept {
    if (t == 0 || t >= kThresholdMax) return 0;
    return kPlanes - __builtin_ctzll(t);
}

}  // namespace dropkit
