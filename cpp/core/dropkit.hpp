// dropkit's C++ core: plain C++17, no Python. Every kernel takes raw pointers, a size, and its
// stream position (seed, offset) and thread count explicitly; none holds global state, so the
// same arguments always give the same bits (docs/rng.md).
#pragma once
#include <cstddef>
#include <cstdint>

namespace dropkit {

enum class Simd : int { scalar = 0, avx2 = 1, avx512 = 2 };

// How outputs are written. automatic: non-temporal (streaming) stores when the output is at
// least streaming_threshold_bytes(), so that a result too large for the caches does not cost a
// read-for-ownership of every line; cached: never; streaming: always (tests). Same bits.
enum class Store : int { automatic = 0, cached = 1, streaming = 2 };

const char* simd_name(Simd s);
// Compiled into this build and supported by this CPU.
bool simd_available(Simd s);
// The widest available target.
Simd simd_best();

// Philox4x32-10 of n (counter, key) pairs: ctr n x 4, key n x 2, out n x 4 (row-major).
void philox4x32_10(const std::uint32_t* ctr, const std::uint32_t* key, std::uint32_t* out,
                   std::size_t n, Simd simd);

// y[i] = keep(seed, offset + i, t) ? x[i] * s : +0.0 for i in [0, n). t = round(rate * 2^32) in
// [0, 2^32]. y may equal x (in place); any other overlap is the caller's to avoid.
void bernoulli_apply(const float* x, float* y, std::size_t n, std::uint64_t t, float s,
                     std::uint64_t seed, std::uint64_t offset, int threads, Simd simd,
                     Store store = Store::automatic);
void bernoulli_apply(const double* x, double* y, std::size_t n, std::uint64_t t, double s,
                     std::uint64_t seed, std::uint64_t offset, int threads, Simd simd,
                     Store store = Store::automatic);
// float16 stored as its bits; computed in float32.
void bernoulli_apply_f16(const std::uint16_t* x, std::uint16_t* y, std::size_t n, std::uint64_t t,
                         float s, std::uint64_t seed, std::uint64_t offset, int threads, Simd simd,
                         Store store = Store::automatic);

// Output size from which Store::automatic streams: input plus output at least 3/4 of the
// last-level cache (glibc's memcpy uses 3/4 too), i.e. an output of 3/8 of it; the cache size
// from Linux sysfs, else sysconf; at least 4 MiB; 32 MiB when unknown.
std::size_t streaming_threshold_bytes();

// The keep mask: out[i] in {0, 1} (n bytes), or packed in numpy.packbits order (ceil(n/8) bytes).
void bernoulli_mask(std::uint8_t* out, std::size_t n, bool packed, std::uint64_t t,
                    std::uint64_t seed, std::uint64_t offset, int threads, Simd simd);

// ---- every variant: one engine (engine.cpp) -------------------------------------------------

// Continuous noise of stream kind 1 (docs/rng.md sections 10-13): a binary32 value per position,
// a multiplier m(g) (gaussian, concrete) or an additive term n(g) (normal).
enum class ContinuousKind : int { gaussian = 0, concrete = 1, normal = 2 };
struct ContinuousNoise {
    ContinuousKind kind;
    float p0, p1, p2;  // gaussian, normal: sigma32; concrete: theta32, inv_t32, scale32
};

// The noise of a call: Bernoulli keep bits (threshold t) or continuous multipliers.
struct NoiseSpec {
    bool continuous;
    std::uint64_t t;         // Bernoulli
    ContinuousNoise c;       // continuous
};

// What an element becomes (docs/rng.md sections 5, 12-14), in the compute type:
//   scale:    keep ? x * a : +0
//   affine:   keep ? (x * a) + b : fill
//   multiply: x * m (continuous noise)
//   add:      x + m (continuous noise, section 12.3)
// Every switch over OpKind and ContinuousKind lists every value (-Werror=switch checks it).
enum class OpKind : int { scale = 0, affine = 1, multiply = 2, add = 3 };
struct OpSpec {
    OpKind kind;
    double a, b, fill;  // rounded once to the compute type
};

// Runs of a broadcast apply (engine.cpp): run r holds elements [r * len, r * len + len); its noise
// index is base(r) + j * step, base(r) = sum over the outer axes of idx_d(r) * ps[d] (the outer
// multi-index of r over shape[0 .. outer)).
inline constexpr int kMaxRunDims = 64;
struct RunMap {
    int outer;
    const std::int64_t* shape;
    const std::uint64_t* ps;
    std::size_t len;
    std::uint64_t step;
    bool nt = false;  // streaming stores where the target has them (outputs larger than the caches)
};

// Positions pos(i) = offset + sum_d i_d * pstrides[d] over x's C-order multi-index (section 8).
// x and y are C-contiguous with `shape`; y may be x. Noise is made at noise size (the distinct
// positions) and applied with a broadcast; the default map runs the fused kernels.
void engine_apply(const float* x, float* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
                  std::uint64_t offset, const NoiseSpec& noise, const OpSpec& op, std::uint64_t seed,
                  int threads, Simd simd);
void engine_apply(const double* x, double* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
                  std::uint64_t offset, const NoiseSpec& noise, const OpSpec& op, std::uint64_t seed,
                  int threads, Simd simd);
void engine_apply_f16(const std::uint16_t* x, std::uint16_t* y, const std::int64_t* shape,
                      const std::uint64_t* pstrides, int ndim, std::uint64_t offset, const NoiseSpec& noise,
                      const OpSpec& op, std::uint64_t seed, int threads, Simd simd);

// Rate arrays (docs/rng.md section 9), default position map: element i (C order over `shape`)
// has threshold t[sum idx_d * tstrides_d] and scale s[sum idx_d * sstrides_d] (strides in
// elements, 0 along broadcast axes; the scale is rounded once to the compute type).
inline constexpr int kMaxRateDims = 64;
struct RateArrays {
    int ndim;
    const std::int64_t* shape;
    const std::uint64_t* t;
    const std::int64_t* tstrides;
    const double* s;
    const std::int64_t* sstrides;
};
void rates_apply(const float* x, float* y, std::size_t n, const RateArrays& r, std::uint64_t seed,
                 std::uint64_t offset, int threads, Simd simd);
void rates_apply(const double* x, double* y, std::size_t n, const RateArrays& r, std::uint64_t seed,
                 std::uint64_t offset, int threads, Simd simd);
void rates_apply_f16(const std::uint16_t* x, std::uint16_t* y, std::size_t n, const RateArrays& r,
                     std::uint64_t seed, std::uint64_t offset, int threads, Simd simd);
// Rate arrays with the position map of engine_apply (docs/rng.md sections 8 and 9); r.shape is
// `shape`. Elements sharing a position share u(g), each compares it with its own threshold.
void rates_apply_nd(const float* x, float* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
                    std::uint64_t offset, const RateArrays& r, std::uint64_t seed, int threads, Simd simd);
void rates_apply_nd(const double* x, double* y, const std::int64_t* shape, const std::uint64_t* pstrides, int ndim,
                    std::uint64_t offset, const RateArrays& r, std::uint64_t seed, int threads, Simd simd);
void rates_apply_nd_f16(const std::uint16_t* x, std::uint16_t* y, const std::int64_t* shape,
                        const std::uint64_t* pstrides, int ndim, std::uint64_t offset, const RateArrays& r,
                        std::uint64_t seed, int threads, Simd simd);

// Concrete dropout's backward (docs/rng.md 13.3), default position map: dx = grad * m and the
// logit gradient, the deterministic sum of section 15 of
// v_i = ((grad_i * x_i) * m_i) * (p - z_i * inv_t) in binary64. Returns the sum.
struct ConcreteBackward {
    float theta32, inv_t32, scale32;  // the forward's binary32 constants
    double p, inv_t;                  // binary64
};
double concrete_backward(const float* g, const float* x, float* dx, std::size_t n, const ConcreteBackward& c,
                         std::uint64_t seed, std::uint64_t offset, int threads, Simd simd);
double concrete_backward(const double* g, const double* x, double* dx, std::size_t n, const ConcreteBackward& c,
                         std::uint64_t seed, std::uint64_t offset, int threads, Simd simd);
double concrete_backward_f16(const std::uint16_t* g, const std::uint16_t* x, std::uint16_t* dx, std::size_t n,
                             const ConcreteBackward& c, std::uint64_t seed, std::uint64_t offset, int threads,
                             Simd simd);

// The sum of v[0 .. n) at reduction positions offset + i in the fixed order of docs/rng.md 15:
// the same bits for any thread count.
double deterministic_sum(const double* v, std::size_t n, std::uint64_t offset, int threads, Simd simd);

// OMP_NUM_THREADS, or the number of cores.
int default_threads();

// Arrays below this many elements run on one thread whatever `threads` says.
inline constexpr std::size_t kParallelCutoff = std::size_t{1} << 16;
// Threads split the work in chunks of this many positions (a multiple of every target's tile).
inline constexpr std::size_t kChunk = std::size_t{1} << 14;

// float16 (its bits) under the common names, so that callers can dispatch on the element type
// with one template (the *_f16 names above stay).
inline void engine_apply(const std::uint16_t* x, std::uint16_t* y, const std::int64_t* shape,
                         const std::uint64_t* pstrides, int ndim, std::uint64_t offset, const NoiseSpec& noise,
                         const OpSpec& op, std::uint64_t seed, int threads, Simd simd) {
    engine_apply_f16(x, y, shape, pstrides, ndim, offset, noise, op, seed, threads, simd);
}
inline void rates_apply_nd(const std::uint16_t* x, std::uint16_t* y, const std::int64_t* shape,
                           const std::uint64_t* pstrides, int ndim, std::uint64_t offset, const RateArrays& r,
                           std::uint64_t seed, int threads, Simd simd) {
    rates_apply_nd_f16(x, y, shape, pstrides, ndim, offset, r, seed, threads, simd);
}
inline double concrete_backward(const std::uint16_t* g, const std::uint16_t* x, std::uint16_t* dx, std::size_t n,
                                const ConcreteBackward& c, std::uint64_t seed, std::uint64_t offset, int threads,
                                Simd simd) {
    return concrete_backward_f16(g, x, dx, n, c, seed, offset, threads, simd);
}

}  // namespace dropkit
