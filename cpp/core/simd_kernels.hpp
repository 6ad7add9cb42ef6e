// The one kernel skeleton that every SIMD target instantiates:
//     stream position -> bit planes of u(g) -> keep bits -> a sink that applies them.
// Include this from an ISA translation unit after defining DROPKIT_ISA_NS (a namespace name unique
// to the target) and an `Isa` traits struct in that namespace, so that code compiled with
// different target flags can never be merged by the linker.
//
// Isa provides:
//   static constexpr int W;                 lanes of 32 bits; a tile is W blocks of 128 positions
//   static constexpr int G;                 bit planes generated at once (independent Philox chains)
//   using V;                                W lanes of uint32
//   V set1(uint32_t), V load(const uint32_t*), void store(uint32_t*, V)
//   V bxor(V, V), V band(V, V), V bor(V, V), V bandnot(V a, V b) = ~a & b, V ones(), V zero()
//   V xor3(V a, V b, V c) = a ^ b ^ c
//   void mulhilo(V a, uint32_t m, V& hi, V& lo)            32x32 -> 64-bit products per lane
//   bool all_zero(const V (&v)[4])
//   template <class T> struct Lanes (optional): the lane policies of the one SIMD apply loop
//       (apply_lanes below) for T = float, double and uint16_t (float16 bits); the skeleton
//       finishes what it leaves with the portable scalar code; void fence() orders streaming stores.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "core/half.hpp"
#include "core/isa_table.hpp"
#include "core/philox.hpp"
#include "core/stream.hpp"
#include "core/dropkit.hpp"

#ifndef DROPKIT_ISA_NS
#error "define DROPKIT_ISA_NS before including simd_kernels.hpp"
#endif

namespace dropkit {
namespace DROPKIT_ISA_NS {

// Philox4x32-10 (docs/rng.md section 1) on G independent states of W lanes each, in place:
// counter (a, b, c, d), keys k0 and k1 broadcast over the states. The G chains are interleaved
// round by round so that the CPU overlaps their latencies (one chain alone is latency-bound).
template <class Isa, int G, class V = typename Isa::V>
inline void philox_rounds(V (&a)[G], V (&b)[G], V (&c)[G], V (&d)[G], V k0, V k1) {
    const V w0 = Isa::set1(kPhiloxW0), w1 = Isa::set1(kPhiloxW1);
    for (int r = 0; r < kPhiloxRounds; ++r) {
        if (r > 0) {
            k0 = Isa::add(k0, w0);
            k1 = Isa::add(k1, w1);
        }
        for (int i = 0; i < G; ++i) {
            V hi0, lo0, hi1, lo1;
            Isa::mulhilo(a[i], kPhiloxM0, hi0, lo0);
            Isa::mulhilo(c[i], kPhiloxM1, hi1, lo1);
            a[i] = Isa::xor3(hi1, b[i], k0);
            b[i] = lo1;
            c[i] = Isa::xor3(hi0, d[i], k1);
            d[i] = lo0;
        }
    }
}

// Batch Philox for the public philox4x32_10: ctr (n x 4), key (n x 2), out (n x 4).
template <class Isa>
void philox_batch(const std::uint32_t* ctr, const std::uint32_t* key, std::uint32_t* out, std::size_t n) {
    constexpr int W = Isa::W;
    alignas(64) std::uint32_t in[6][W];
    alignas(64) std::uint32_t res[4][W];
    for (std::size_t i0 = 0; i0 < n; i0 += W) {
        const std::size_t m = (n - i0 < std::size_t{W}) ? n - i0 : std::size_t{W};
        for (std::size_t l = 0; l < W; ++l) {
            const std::size_t i = i0 + (l < m ? l : 0);
            for (int w = 0; w < 4; ++w) in[w][l] = ctr[4 * i + static_cast<std::size_t>(w)];
            in[4][l] = key[2 * i];
            in[5][l] = key[2 * i + 1];
        }
        typename Isa::V a[1] = {Isa::load(in[0])}, b[1] = {Isa::load(in[1])};
        typename Isa::V c[1] = {Isa::load(in[2])}, d[1] = {Isa::load(in[3])};
        philox_rounds<Isa, 1>(a, b, c, d, Isa::load(in[4]), Isa::load(in[5]));
        Isa::store(res[0], a[0]);
        Isa::store(res[1], b[0]);
        Isa::store(res[2], c[0]);
        Isa::store(res[3], d[0]);
        for (std::size_t l = 0; l < m; ++l)
            for (int w = 0; w < 4; ++w) out[4 * (i0 + l) + static_cast<std::size_t>(w)] = res[w][l];
    }
}

// Planes p0 .. p0+G-1 of the same W blocks: counters (c0, c1, p0 + i, c3), i < G.
template <class Isa, int G, class V = typename Isa::V>
inline void philox_planes(V c0, V c1, std::uint32_t p0, V c3, V k0, V k1, V (&out)[G][4]) {
    V a[G], b[G], c[G], d[G];
    for (int i = 0; i < G; ++i) {
        a[i] = c0;
        b[i] = c1;
        c[i] = Isa::set1(p0 + static_cast<std::uint32_t>(i));
        d[i] = c3;
    }
    philox_rounds<Isa, G>(a, b, c, d, k0, k1);
    for (int i = 0; i < G; ++i) {
        out[i][0] = a[i]; out[i][1] = b[i]; out[i][2] = c[i]; out[i][3] = d[i];
    }
}

// Fold planes p0 .. p0+G-1 (most significant first) into the running comparison of u with t.
template <class Isa, int G, class V = typename Isa::V>
inline void compare_planes(const V (&u)[G][4], int p0, std::uint64_t t, V (&lt)[4], V (&eq)[4]) {
    for (int i = 0; i < G; ++i) {
        if ((t >> (31 - (p0 + i))) & 1u) {
            for (int w = 0; w < 4; ++w) {
                lt[w] = Isa::bor(lt[w], Isa::bandnot(u[i][w], eq[w]));
                eq[w] = Isa::band(eq[w], u[i][w]);
            }
        } else {
            for (int w = 0; w < 4; ++w) eq[w] = Isa::bandnot(u[i][w], eq[w]);
        }
    }
}

// The Bernoulli counters (block lo, block hi, -, kind 0) of blocks block0 .. block0+W-1, and the key.
template <class Isa>
struct PlaneCounters {
    using V = typename Isa::V;
    V c0, c1, c3, k0, k1;
    PlaneCounters(std::uint64_t seed, std::uint64_t block0) {
        alignas(64) std::uint32_t lo[Isa::W], hi[Isa::W];
        for (int l = 0; l < Isa::W; ++l) {
            const std::uint64_t b = block0 + static_cast<std::uint64_t>(l);
            lo[l] = static_cast<std::uint32_t>(b);
            hi[l] = static_cast<std::uint32_t>(b >> 32);
        }
        c0 = Isa::load(lo);
        c1 = Isa::load(hi);
        c3 = Isa::set1(kStreamBernoulli);
        k0 = Isa::set1(static_cast<std::uint32_t>(seed));
        k1 = Isa::set1(static_cast<std::uint32_t>(seed >> 32));
    }
};

// Keep bits of the tile made of blocks block0 .. block0+W-1: bit (p mod 32) of words[p / 32]
// is the keep bit of position 128*block0 + p. Planes are generated most significant first,
// Isa::G at a time, and the loop stops once every position of the tile is decided
// (docs/rng.md section 4): planes after that cannot change a bit.
template <class Isa>
inline void keep_words(std::uint64_t seed, std::uint64_t block0, std::uint64_t t, std::uint32_t* words) {
    constexpr int W = Isa::W;
    constexpr int G = Isa::G;
    using V = typename Isa::V;
    if (t == 0 || t >= kThresholdMax) {
        const std::uint32_t fill = (t == 0) ? 0xFFFFFFFFu : 0u;
        for (int i = 0; i < 4 * W; ++i) words[i] = fill;
        return;
    }
    const PlaneCounters<Isa> pc(seed, block0);
    const V vc0 = pc.c0, vc1 = pc.c1, vc3 = pc.c3, k0 = pc.k0, k1 = pc.k1;
    V lt[4] = {Isa::zero(), Isa::zero(), Isa::zero(), Isa::zero()};  // u < t already decided
    V eq[4] = {Isa::ones(), Isa::ones(), Isa::ones(), Isa::ones()};  // top planes equal to t's
    const int planes = planes_needed(t);
    int p = 0;
    for (; p + G <= planes; p += G) {
        V u[G][4];
        philox_planes<Isa, G>(vc0, vc1, static_cast<std::uint32_t>(p), vc3, k0, k1, u);
        compare_planes<Isa, G>(u, p, t, lt, eq);
        if (Isa::all_zero(eq)) break;
    }
    if (p + G > planes) {  // the last planes-mod-G planes (or all, e.g. the single one at rate 0.5)
        for (; p < planes; ++p) {
            V u[1][4];
            philox_planes<Isa, 1>(vc0, vc1, static_cast<std::uint32_t>(p), vc3, k0, k1, u);
            compare_planes<Isa, 1>(u, p, t, lt, eq);
            if (Isa::all_zero(eq)) break;
        }
    }
    alignas(64) std::uint32_t tmp[4][W];
    for (int w = 0; w < 4; ++w) Isa::store(tmp[w], lt[w]);
    for (int l = 0; l < W; ++l)
        for (int w = 0; w < 4; ++w) words[4 * l + w] = ~tmp[w][l];
}

// Keep bits of a tile against a threshold per position (docs/rng.md section 9): t32[k] is the
// threshold of position 128*block0 + k, clamped to 2^32 - 1, and bit k of `never` is set where
// the threshold was 2^32 (rate 1: dropped whatever u is). The comparison is bit-sliced: plane p
// of u against plane p of the thresholds, planes made until every position is decided.
template <class Isa, class = void>
struct HasPlaneBits : std::false_type {};
template <class Isa>
struct HasPlaneBits<Isa, std::void_t<decltype(Isa::plane_bits(nullptr, 0, nullptr, std::size_t{0}))>>
    : std::true_type {};

// out[k] bit j = bit (31 - p) of t32[32k + j], k < nwords.
template <class Isa>
inline void plane_bits(const std::uint32_t* t32, int p, std::uint32_t* out, std::size_t nwords) {
    if constexpr (HasPlaneBits<Isa>::value) {
        Isa::plane_bits(t32, p, out, nwords);
    } else {
        for (std::size_t k = 0; k < nwords; ++k) {
            std::uint32_t w = 0;
            for (unsigned j = 0; j < 32; ++j) w |= ((t32[32 * k + j] >> (31 - p)) & 1u) << j;
            out[k] = w;
        }
    }
}

// tplanes(p, tw) writes plane p of the tile's thresholds: tw[w][l] = the word of positions
// 128 (block0 + l) + 32 w + (0..31); never[4 l + w] the same words of the `never` bits.
template <class Isa, class TPlanes>
inline void keep_words_with_planes(std::uint64_t seed, std::uint64_t block0, TPlanes&& tplanes,
                                    const std::uint32_t* never, std::uint32_t* words) {
    constexpr int W = Isa::W;
    using V = typename Isa::V;
    const PlaneCounters<Isa> pc(seed, block0);
    const V vc0 = pc.c0, vc1 = pc.c1, vc3 = pc.c3, k0 = pc.k0, k1 = pc.k1;
    V lt[4] = {Isa::zero(), Isa::zero(), Isa::zero(), Isa::zero()};
    V eq[4] = {Isa::ones(), Isa::ones(), Isa::ones(), Isa::ones()};
    constexpr int G = Isa::G;  // planes made at once: G interleaved Philox chains
    static_assert(kPlanes % G == 0, "the plane loop steps by G up to plane 31");
    for (int p = 0; p < kPlanes; p += G) {
        V u[G][4];
        philox_planes<Isa, G>(vc0, vc1, static_cast<std::uint32_t>(p), vc3, k0, k1, u);
        for (int i = 0; i < G; ++i) {
            V tv[4];
            tplanes(p + i, tv);
            for (int w = 0; w < 4; ++w) {
                const V t = tv[w];
                lt[w] = Isa::bor(lt[w], Isa::band(Isa::bandnot(u[i][w], eq[w]), t));  // u bit 0, t bit 1
                eq[w] = Isa::bandnot(Isa::bxor(u[i][w], t), eq[w]);
            }
        }
        if (Isa::all_zero(eq)) break;
    }
    alignas(64) std::uint32_t tmp[4][W];
    for (int w = 0; w < 4; ++w) Isa::store(tmp[w], lt[w]);
    for (int l = 0; l < W; ++l)
        for (int w = 0; w < 4; ++w) words[4 * l + w] = ~tmp[w][l] & ~never[4 * l + w];
}

// The thresholds as t32 (see above): plane p transposed from them, tile by tile.
template <class Isa>
inline void keep_words_per_position(std::uint64_t seed, std::uint64_t block0, const std::uint32_t* t32,
                                    const std::uint32_t* never, std::uint32_t* words) {
    keep_words_with_planes<Isa>(seed, block0, [t32](int p, typename Isa::V (&tv)[4]) {
        alignas(64) std::uint32_t tw[4][Isa::W];
        for (int l = 0; l < Isa::W; ++l)  // word w of block l: positions 128 l + 32 w + (0..31)
            for (int w = 0; w < 4; ++w) plane_bits<Isa>(t32 + 128 * l + 32 * w, p, &tw[w][l], 1);
        for (int w = 0; w < 4; ++w) tv[w] = Isa::load(tw[w]);
    }, never, words);
}

// 32x32 bit transpose in place: bit c of a[r] <-> bit r of a[c] (Hacker's Delight 7-3, bit 0 the
// least significant): the blocks off the diagonal swapped at widths 16, 8, 4, 2, 1.
inline void transpose32(std::uint32_t (&a)[32]) {
    std::uint32_t m = 0x0000FFFFu;
    for (unsigned j = 16; j != 0; j >>= 1, m ^= m << j)
        for (unsigned r = 0; r < 32; r = (r + j + 1) & ~j) {
            const std::uint32_t t = ((a[r] >> j) ^ a[r + j]) & m;
            a[r] ^= t << j;
            a[r + j] ^= t;
        }
}

// Elements [i0, i1) at positions offset + i, one tile of kTile positions (aligned in the stream) at
// a time: f(i, count, in_tile) for the elements i .. i + count - 1, at offset in_tile of their tile.
template <std::uint64_t kTile, class F>
inline void for_each_tile(std::size_t i0, std::size_t i1, std::uint64_t offset, F&& f) {
    std::size_t i = i0;
    while (i < i1) {
        const std::uint64_t in_tile = (offset + i) % kTile;
        const std::uint64_t left = kTile - in_tile;
        const std::size_t count = (i1 - i < left) ? i1 - i : static_cast<std::size_t>(left);
        f(i, count, in_tile);
        i += count;
    }
}

// out[i] = u(offset + i) for i in [i0, i1) (docs/rng.md section 3): all 32 planes of each tile,
// then per word of 32 positions the plane words (plane p as row 31 - p) transposed, so that row
// j holds bit 31 - p = B_p of position j. Rate arrays over a broadcast map compare these with a
// threshold per element (engine.cpp).
template <class Isa>
void uniform_words_range(std::uint32_t* out, std::size_t i0, std::size_t i1, std::uint64_t seed,
                         std::uint64_t offset) {
    constexpr int W = Isa::W;
    constexpr int G = Isa::G;
    constexpr std::uint64_t kTile = kBlockSize * W;
    static_assert(kPlanes % G == 0, "the plane loop steps by G up to plane 31");
    alignas(64) std::uint32_t planes[kPlanes][4][W];
    alignas(64) std::uint32_t u[kTile];
    for_each_tile<kTile>(i0, i1, offset, [&](std::size_t i, std::size_t count, std::uint64_t in_tile) {
        const PlaneCounters<Isa> pc(seed, (offset + i - in_tile) >> kBlockBits);
        for (int p = 0; p < kPlanes; p += G) {
            typename Isa::V v[G][4];
            philox_planes<Isa, G>(pc.c0, pc.c1, static_cast<std::uint32_t>(p), pc.c3, pc.k0, pc.k1, v);
            for (int q = 0; q < G; ++q)
                for (int w = 0; w < 4; ++w) Isa::store(planes[p + q][w], v[q][w]);
        }
        // only the words of 32 positions that [in_tile, in_tile + count) touches
        for (std::size_t k = static_cast<std::size_t>(in_tile) / 32; k * 32 < in_tile + count; ++k) {
            const std::size_t l = k / 4, w = k % 4;  // block l, word w: positions 128 l + 32 w + (0..31)
            std::uint32_t a[32];
            for (int p = 0; p < kPlanes; ++p) a[31 - p] = planes[p][w][l];
            transpose32(a);
            std::memcpy(u + 32 * k, a, sizeof a);
        }
        std::memcpy(out + i, u + in_tile, count * sizeof(std::uint32_t));
    });
}

inline bool keep_bit(const std::uint32_t* words, std::size_t p) {
    return (words[p >> 5] >> (p & 31)) & 1u;
}
// The same bit through the little-endian byte view the SIMD targets (x86 only) use.
inline bool byte_bit(const std::uint8_t* bytes, std::size_t p) { return (bytes[p >> 3] >> (p & 7)) & 1u; }

// Portable element-wise apply, used by the scalar target and for the tails of the SIMD ones.
// Branch-free: a mask that is random at rate 0.5 would mispredict half the branches.
inline float mul_keep(float x, float s, bool keep) {
    return bits_to_float(float_to_bits(x * s) & (0u - static_cast<std::uint32_t>(keep)));
}
inline double mul_keep(double x, double s, bool keep) {
    const double p = x * s;
    std::uint64_t u;
    std::memcpy(&u, &p, sizeof u);
    u &= 0ull - static_cast<std::uint64_t>(keep);
    double r;
    std::memcpy(&r, &u, sizeof r);
    return r;
}
inline std::uint16_t mul_keep(std::uint16_t x, float s, bool keep) {
    return static_cast<std::uint16_t>(float_to_half(half_to_float(x) * s) & (0u - static_cast<unsigned>(keep)));
}

// Alpha dropout's fill (docs/rng.md section 14): keep ? (x * a) + b : fill, in the compute type CT
// (two roundings, no FMA), the fill selected bit for bit whatever x held.
template <class CT>
struct Affine {
    CT a, b, fill;
};
inline float keep_one(float x, const Affine<float>& f, bool keep) {
    const std::uint32_t m = 0u - static_cast<std::uint32_t>(keep);
    return bits_to_float((float_to_bits((x * f.a) + f.b) & m) | (float_to_bits(f.fill) & ~m));
}
inline double keep_one(double x, const Affine<double>& f, bool keep) {
    const std::uint64_t m = 0ull - static_cast<std::uint64_t>(keep);
    const double v = (x * f.a) + f.b;
    std::uint64_t a, b;
    std::memcpy(&a, &v, sizeof a);
    std::memcpy(&b, &f.fill, sizeof b);
    a = (a & m) | (b & ~m);
    double r;
    std::memcpy(&r, &a, sizeof r);
    return r;
}
inline std::uint16_t keep_one(std::uint16_t x, const Affine<float>& f, bool keep) {
    return float_to_half(keep_one(half_to_float(x), f, keep));
}
// keep ? x * s : +0 (standard dropout, a scale per call or per element)
template <class T, class S>
inline T keep_one(T x, S s, bool keep) {
    return mul_keep(x, s, keep);
}

// Walk elements [i0, i1) of an array whose element i sits at position offset + i, one tile at a
// time, handing each tile's keep bits to sink(i, count, words, bit0).
// Streaming (out-of-cache) apply prefetches each tile's input before making its keep bits when
// the rate needs at least this many planes (docs/rng.md section 4).
#ifndef DROPKIT_PREFETCH_MIN_PLANES
#define DROPKIT_PREFETCH_MIN_PLANES 2
#endif
inline constexpr int kPrefetchMinPlanes = DROPKIT_PREFETCH_MIN_PLANES;

// before(i, count), if given, runs before each tile's keep bits are made (apply_range prefetches
// the tile's input there, so that memory works while the Philox rounds compute).
struct NoBefore {
    void operator()(std::size_t, std::size_t) const {}
};
template <class Isa, class Sink, class Before = NoBefore>
inline void walk(std::size_t i0, std::size_t i1, std::uint64_t offset, std::uint64_t seed,
                 std::uint64_t t, Sink&& sink, Before&& before = Before{}) {
    constexpr std::uint64_t kTile = kBlockSize * Isa::W;
    // +2 words: SIMD sinks may read a few bytes past the last bit they use.
    alignas(64) std::uint32_t words[4 * Isa::W + 2] = {};
    std::size_t i = i0;
    while (i < i1) {
        const std::uint64_t g = offset + i;
        const std::uint64_t in_tile = g % kTile;
        const std::uint64_t left = kTile - in_tile;
        const std::size_t count = (i1 - i < left) ? i1 - i : static_cast<std::size_t>(left);
        before(i, count);
        keep_words<Isa>(seed, (g - in_tile) >> kBlockBits, t, words);
        sink(i, count, words, static_cast<unsigned>(in_tile));
        i += count;
    }
}

// ---- the SIMD apply, written once ----------------------------------------------------------------
// A target supplies Isa::Lanes<T> for T = float, double, uint16_t (float16 bits): N elements per
// step, splat(s), load(x), keep(bits, p) (its form of N keep bits from bit p), compute(v, vs, k)
// (the stored form of keep ? v * s : +0), store, stream, and optionally a masked tail(x, y, n,
// k, vs) announced by kMaskedTail. The scalar target has none: the portable loop does all.
template <class Isa, class T, class = void>
struct HasLanes : std::false_type {};
template <class Isa, class T>
struct HasLanes<Isa, T, std::void_t<decltype(Isa::template Lanes<T>::N)>> : std::true_type {};
template <class L, class = void>
struct HasTail : std::false_type {};
template <class L>
struct HasTail<L, std::void_t<decltype(L::kMaskedTail)>> : std::true_type {};

template <class L, class = void>
struct HasAffine : std::false_type {};
template <class L>
struct HasAffine<L, std::void_t<decltype(&L::affine)>> : std::true_type {};
template <class S>
struct IsAffine : std::false_type {};
template <class CT>
struct IsAffine<Affine<CT>> : std::true_type {};

// What each element of a tile becomes, for elements [0, count); returns how many it did (all,
// with a masked tail). `s` is one scale (keep ? x * s : +0), a pointer to a scale per element
// (rate arrays; then T is its own compute type: float or double), or an Affine (alpha dropout:
// keep ? (x * a) + b : fill, through the target's Lanes::affine; none for float16, whose
// elements are left to the caller). With `nt`, non-temporal stores from the first aligned
// element on (the few before it go through the portable path).
template <class Isa, class T, class S>
inline std::size_t apply_lanes(const T* x, T* y, std::size_t count, const std::uint8_t* bits, unsigned bit0, S s,
                               bool nt) {
    using L = typename Isa::template Lanes<T>;
    constexpr bool per_element = std::is_pointer<S>::value;
    constexpr bool affine = IsAffine<S>::value;
    if constexpr (affine && !HasAffine<L>::value) {
        (void)x, (void)y, (void)count, (void)bits, (void)bit0, (void)s, (void)nt;
        return 0;
    } else {
        auto vec = [&](std::size_t e) {
            const auto v = L::load(x + e);
            const auto k = L::keep(bits, bit0 + e);
            if constexpr (affine) return L::affine(v, L::splat(s.a), L::splat(s.b), L::splat(s.fill), k);
            else if constexpr (per_element) return L::compute(v, L::load(s + e), k);
            else return L::compute(v, L::splat(s), k);
        };
        auto one = [&](std::size_t e) {
            if constexpr (per_element) return keep_one(x[e], s[e], byte_bit(bits, bit0 + e));
            else return keep_one(x[e], s, byte_bit(bits, bit0 + e));
        };
        std::size_t e = 0;
        if (nt) {
            for (; e < count && reinterpret_cast<std::uintptr_t>(y + e) % L::kAlign != 0; ++e) y[e] = one(e);
            for (; e + L::N <= count; e += L::N) L::stream(y + e, vec(e));
        } else {
            for (; e + L::N <= count; e += L::N) L::store(y + e, vec(e));
        }
        if constexpr (HasTail<L>::value && !per_element && !affine) {
            if (e < count) {
                L::tail(x + e, y + e, count - e, L::keep(bits, bit0 + e), L::splat(s));
                return count;
            }
        }
        return e;
    }
}


// nt: non-temporal (streaming) stores where the target has them, for outputs larger than the
// caches; the bits are the same either way.
template <class Isa, class T, class S>
void apply_range(const T* x, T* y, std::size_t i0, std::size_t i1, std::uint64_t t, S s,
                 std::uint64_t seed, std::uint64_t offset, bool nt) {
    const bool prefetch = nt && planes_needed(t) >= kPrefetchMinPlanes;
    walk<Isa>(i0, i1, offset, seed, t,
              [&](std::size_t i, std::size_t count, const std::uint32_t* words, unsigned bit0) {
                  const auto* bytes = reinterpret_cast<const std::uint8_t*>(words);
                  std::size_t e = 0;
                  if constexpr (HasLanes<Isa, T>::value) e = apply_lanes<Isa>(x + i, y + i, count, bytes, bit0, s, nt);
                  for (; e < count; ++e) y[i + e] = keep_one(x[i + e], s, keep_bit(words, bit0 + e));
              },
              [&](std::size_t i, std::size_t count) {
                  // Out of cache with many planes per tile: ask for the tile's input now, so that
                  // its cache lines arrive while the planes are computed (the hardware prefetcher
                  // alone stalls with the loads).
                  if (!prefetch) return;
                  const char* p = reinterpret_cast<const char*>(x + i);
                  const char* end = reinterpret_cast<const char*>(x + i + count);
                  for (; p < end; p += 64) __builtin_prefetch(p, 0, 3);
              });
    if (nt) Isa::fence();  // order the streaming stores before anything that follows
}

// Alpha dropout with the default map (docs/rng.md section 14): the fused walk of standard dropout
// with the affine form (a, b, fill of `op`, rounded to the compute type).
template <class Isa, class T>
void affine_range(const T* x, T* y, std::size_t i0, std::size_t i1, std::uint64_t t, const OpSpec& op,
                  std::uint64_t seed, std::uint64_t offset, bool nt) {
    using CT = std::conditional_t<std::is_same<T, double>::value, double, float>;
    const Affine<CT> f{static_cast<CT>(op.a), static_cast<CT>(op.b), static_cast<CT>(op.fill)};
    apply_range<Isa, T>(x, y, i0, i1, t, f, seed, offset, nt);
}

// Unpacked mask: out[i] = 1 if kept else 0. Isa::bytes (if the target has it) widens keep bits
// to bytes many at a time and returns how many it did; the portable loop does the rest.
template <class Isa, class = void>
struct HasBytes : std::false_type {};
template <class Isa>
struct HasBytes<Isa, std::void_t<decltype(Isa::bytes(nullptr, std::size_t{0}, nullptr, 0u))>> : std::true_type {};

template <class Isa>
void mask_bytes_range(std::uint8_t* out, std::size_t i0, std::size_t i1, std::uint64_t t,
                      std::uint64_t seed, std::uint64_t offset) {
    walk<Isa>(i0, i1, offset, seed, t,
              [&](std::size_t i, std::size_t count, const std::uint32_t* words, unsigned bit0) {
                  std::size_t e = 0;
                  if constexpr (HasBytes<Isa>::value)
                      e = Isa::bytes(out + i, count, reinterpret_cast<const std::uint8_t*>(words), bit0);
                  for (; e < count; ++e) out[i + e] = static_cast<std::uint8_t>(keep_bit(words, bit0 + e));
              });
}

// Packed mask in numpy.packbits (big) order. i0 must be a multiple of 8 so that no two calls
// write the same byte; the caller zeroes nothing: every byte in range is written whole.
template <class Isa>
void mask_packed_range(std::uint8_t* out, std::size_t i0, std::size_t i1, std::uint64_t t,
                       std::uint64_t seed, std::uint64_t offset) {
    std::uint32_t acc = 0;
    walk<Isa>(i0, i1, offset, seed, t,
              [&](std::size_t i, std::size_t count, const std::uint32_t* words, unsigned bit0) {
                  for (std::size_t e = 0; e < count; ++e) {
                      const std::size_t k = i + e;
                      acc = (acc << 1) | static_cast<std::uint32_t>(keep_bit(words, bit0 + e));
                      if ((k & 7) == 7) {
                          out[k >> 3] = static_cast<std::uint8_t>(acc);
                          acc = 0;
                      }
                  }
              });
    if (i1 & 7) out[i1 >> 3] = static_cast<std::uint8_t>(acc << (8 - (i1 & 7)));
}

}  // namespace DROPKIT_ISA_NS
}  // namespace dropkit
#include "core/noise.hpp"
#include "core/element_ops.hpp"
namespace dropkit {
namespace DROPKIT_ISA_NS {

// ---- continuous noise (stream kind 1, docs/rng.md sections 10-13) ---------------------------
// Philox chains per continuous tile: the noise's long dependency chains (division, square root,
// polynomials) want more independent calls in flight than the bit planes do. Four with AVX-512's
// 32 registers (eight spill; docs/performance.md); the planes' G with AVX2's 16.
template <class Isa>
inline constexpr int kContinuousG = Isa::W >= 16 ? 4 : Isa::G;

// Isa::transpose4(const F (&v)[4], float* out), if the target has it: out[4 * l + j] = v[j][l].
template <class Isa, class = void>
struct HasTranspose4 : std::false_type {};
template <class Isa>
struct HasTranspose4<Isa, std::void_t<decltype(Isa::transpose4(std::declval<const typename Isa::F (&)[4]>(),
                                                                static_cast<float*>(nullptr)))>> : std::true_type {};

// Multipliers of positions 4*q0 .. 4*q0 + 4*W*G - 1, in position order: W*G Philox calls with
// counters (q, q >> 32, 0, 1), G chains interleaved, each call's four words giving the noise of
// its four positions (noise.hpp).
template <class Isa, class NoiseFn>
inline void continuous_tile(std::uint64_t seed, std::uint64_t q0, const NoiseFn& noise, float* m) {
    constexpr int W = Isa::W;
    constexpr int G = kContinuousG<Isa>;
    using V = typename Isa::V;
    using F = typename Isa::F;
    alignas(64) std::uint32_t c0[G][W], c1[G][W];
    for (int i = 0; i < G; ++i)
        for (int l = 0; l < W; ++l) {
            const std::uint64_t q = q0 + static_cast<std::uint64_t>(i * W + l);
            c0[i][l] = static_cast<std::uint32_t>(q);
            c1[i][l] = static_cast<std::uint32_t>(q >> 32);
        }
    V a[G], b[G], c[G], d[G];
    for (int i = 0; i < G; ++i) {
        a[i] = Isa::load(c0[i]);
        b[i] = Isa::load(c1[i]);
        c[i] = Isa::zero();  // draw index 0
        d[i] = Isa::set1(kStreamContinuous);
    }
    philox_rounds<Isa, G>(a, b, c, d, Isa::set1(static_cast<std::uint32_t>(seed)),
                          Isa::set1(static_cast<std::uint32_t>(seed >> 32)));
    alignas(64) float tmp[4][W];
    for (int i = 0; i < G; ++i) {
        const V x[4] = {a[i], b[i], c[i], d[i]};
        F out[4];
        noise.template operator()<Isa>(x, out);
        float* mi = m + 4 * W * i;
        if constexpr (HasTranspose4<Isa>::value) {
            Isa::transpose4(out, mi);
        } else {
            for (int j = 0; j < 4; ++j) Isa::fstore(tmp[j], out[j]);
            for (int l = 0; l < W; ++l)
                for (int j = 0; j < 4; ++j) mi[4 * l + j] = tmp[j][l];
        }
    }
}

// Walk elements [i0, i1) at positions offset + i, one tile of 4*W*G positions at a time, handing
// each tile's multipliers to sink(i, count, m) (m[e] belongs to element i + e).
template <class Isa, class NoiseFn, class Sink>
inline void walk_continuous(std::size_t i0, std::size_t i1, std::uint64_t offset, std::uint64_t seed,
                            const NoiseFn& noise, Sink&& sink) {
    constexpr std::uint64_t kTile = 4 * Isa::W * kContinuousG<Isa>;
    alignas(64) float m[kTile];
    for_each_tile<kTile>(i0, i1, offset, [&](std::size_t i, std::size_t count, std::uint64_t in_tile) {
        continuous_tile<Isa>(seed, (offset + i - in_tile) / 4, noise, m);
        sink(i, count, m + in_tile);
    });
}

// x * m and x + m in the compute type (binary32; binary64 for double, m widened exactly; float16
// through binary32, rounded back once).
inline float mul_m(float x, float m) { return x * m; }
inline double mul_m(double x, float m) { return x * static_cast<double>(m); }
inline std::uint16_t mul_m(std::uint16_t x, float m) { return float_to_half(half_to_float(x) * m); }
inline float add_m(float x, float m) { return x + m; }
inline double add_m(double x, float m) { return x + static_cast<double>(m); }
inline std::uint16_t add_m(std::uint16_t x, float m) { return float_to_half(half_to_float(x) + m); }

// The one select of a continuous noise: f(noise functor) for p's kind.
template <class F>
inline void visit_noise(const ContinuousNoise& p, F&& f) {
    switch (p.kind) {
        case ContinuousKind::gaussian: f(NormalNoise<true>{p.p0}); return;
        case ContinuousKind::normal: f(NormalNoise<false>{p.p0}); return;
        case ContinuousKind::concrete: f(ConcreteNoise{p.p0, p.p1, p.p2}); return;
    }
}

// y[i] = x[i] * m(offset + i) (OpKind::multiply) or x[i] + m(offset + i) (OpKind::add) for the
// continuous noise p; the engine passes no other op.
template <class Isa, class T>
void continuous_apply_range(const T* x, T* y, std::size_t i0, std::size_t i1, const ContinuousNoise& p, OpKind op,
                            std::uint64_t seed, std::uint64_t offset) {
    visit_noise(p, [&](const auto& noise) {
        walk_continuous<Isa>(i0, i1, offset, seed, noise, [&](std::size_t i, std::size_t count, const float* m) {
            if (op == OpKind::add)
                for (std::size_t e = 0; e < count; ++e) y[i + e] = add_m(x[i + e], m[e]);
            else
                for (std::size_t e = 0; e < count; ++e) y[i + e] = mul_m(x[i + e], m[e]);
        });
    });
}

// out[i] = m(offset + i): the noise values alone (broadcast noise is made at noise size first).
template <class Isa>
void continuous_noise_range(float* out, std::size_t i0, std::size_t i1, const ContinuousNoise& p,
                            std::uint64_t seed, std::uint64_t offset) {
    visit_noise(p, [&](const auto& noise) {
        walk_continuous<Isa>(i0, i1, offset, seed, noise, [&](std::size_t i, std::size_t count, const float* m) {
            std::memcpy(out + i, m, count * sizeof(float));
        });
    });
}

// ---- rate arrays (docs/rng.md section 9): a threshold and a scale per element ----------------

// y[i] = keep_i ? x[i] * s_i : +0 for i in [i0, i1), positions offset + i; rates.t and rates.s
// give element i's threshold and scale through their strides over x's shape (zero along
// broadcast axes).
template <class Isa, class T>
void rates_apply_range(const T* x, T* y, std::size_t i0, std::size_t i1, const RateArrays& rates,
                       std::uint64_t seed, std::uint64_t offset) {
    using CT = std::conditional_t<std::is_same<T, double>::value, double, float>;
    constexpr std::uint64_t kTile = kBlockSize * Isa::W;
    alignas(64) std::uint32_t t32[kTile];
    alignas(64) std::uint32_t never[kTile / 32];
    alignas(64) std::uint32_t words[4 * Isa::W + 2] = {};
    CT sc[kTile];
    // multi-index of element i and the threshold/scale offsets that go with it
    const int nd = rates.ndim;
    std::int64_t idx[kMaxRateDims] = {};
    std::int64_t to = 0, so = 0;
    {
        std::size_t r = i0;
        for (int d = nd - 1; d >= 0; --d) {
            const auto sd = static_cast<std::size_t>(rates.shape[d]);
            idx[d] = static_cast<std::int64_t>(r % sd);
            r /= sd;
            to += idx[d] * rates.tstrides[d];
            so += idx[d] * rates.sstrides[d];
        }
    }
    auto next = [&] {  // advance the multi-index by one element (C order)
        for (int d = nd - 1; d >= 0; --d) {
            ++idx[d];
            to += rates.tstrides[d];
            so += rates.sstrides[d];
            if (idx[d] < rates.shape[d]) return;
            to -= idx[d] * rates.tstrides[d];
            so -= idx[d] * rates.sstrides[d];
            idx[d] = 0;
        }
    };
    for_each_tile<kTile>(i0, i1, offset, [&](std::size_t i, std::size_t count, std::uint64_t in_tile) {
        const std::uint64_t g = offset + i;
        std::memset(t32, 0, sizeof t32);
        std::memset(never, 0, sizeof never);
        // run by run along the last axis (stride 1 or 0 there: a loop the compiler vectorizes)
        for (std::size_t e = 0; e < count;) {
            const int last = nd - 1;
            const std::size_t run = nd == 0 ? count - e
                                            : std::min(count - e, static_cast<std::size_t>(rates.shape[last] - idx[last]));
            const std::int64_t tst = nd == 0 ? 0 : rates.tstrides[last], sst = nd == 0 ? 0 : rates.sstrides[last];
            const std::size_t k0 = static_cast<std::size_t>(in_tile) + e;
            for (std::size_t j = 0; j < run; ++j) {
                const std::uint64_t t = rates.t[to + static_cast<std::int64_t>(j) * tst];
                t32[k0 + j] = t >= kThresholdMax ? 0xFFFFFFFFu : static_cast<std::uint32_t>(t);
                sc[k0 + j] = static_cast<CT>(rates.s[so + static_cast<std::int64_t>(j) * sst]);
            }
            for (std::size_t j = 0; j < run; ++j)
                if (rates.t[to + static_cast<std::int64_t>(j) * tst] >= kThresholdMax)
                    never[(k0 + j) >> 5] |= 1u << ((k0 + j) & 31);
            e += run;
            if (nd == 0) break;
            // move the multi-index by `run` elements: to the end of this row, or within it
            if (static_cast<std::int64_t>(run) + idx[last] < rates.shape[last]) {
                idx[last] += static_cast<std::int64_t>(run);
                to += static_cast<std::int64_t>(run) * tst;
                so += static_cast<std::int64_t>(run) * sst;
            } else {
                to -= idx[last] * tst;
                so -= idx[last] * sst;
                idx[last] = rates.shape[last] - 1;
                to += idx[last] * tst;
                so += idx[last] * sst;
                next();
            }
        }
        keep_words_per_position<Isa>(seed, (g - in_tile) >> kBlockBits, t32, never, words);
        std::size_t e = 0;
        if constexpr (HasLanes<Isa, T>::value && std::is_same<T, CT>::value)
            e = apply_lanes<Isa>(x + i, y + i, count, reinterpret_cast<const std::uint8_t*>(words),
                                 static_cast<unsigned>(in_tile), sc + in_tile, false);
        for (; e < count; ++e) {
            const std::size_t k = static_cast<std::size_t>(in_tile) + e;
            y[i + e] = mul_keep(x[i + e], sc[k], keep_bit(words, k));
        }
    });
}

// Rates that vary along the last axis only (a rate per feature): element i has feature
// i mod F, so the thresholds of the 32 positions of a stream word repeat with the period
// L = lcm(F, 32). PeriodicRates (engine.cpp) holds their bit planes, made once per call, and each
// tile gathers its words from them instead of transposing thresholds tile by tile.
template <class Isa, class T>
void rates_periodic_range(const T* x, T* y, std::size_t i0, std::size_t i1, const PeriodicRates& pr,
                          std::uint64_t seed, std::uint64_t offset) {
    using CT = std::conditional_t<std::is_same<T, double>::value, double, float>;
    constexpr int W = Isa::W;
    constexpr std::uint64_t kTile = kBlockSize * W;
    static_assert(kTile <= kMaxTile, "a tile reads at most kMaxTile scales from its start");
    const CT* srep = std::is_same<CT, double>::value ? reinterpret_cast<const CT*>(pr.scales64)
                                                     : reinterpret_cast<const CT*>(pr.scales32);
    alignas(64) std::uint32_t words[4 * W + 2] = {};
    for_each_tile<kTile>(i0, i1, offset, [&](std::size_t i, std::size_t count, std::uint64_t in_tile) {
        const std::uint64_t g = offset + i;
        // The word of positions 32 m + (0..31), 32 m = tile start + 128 l + 32 w, holds element
        // indices 32 m - offset + (0..31): plane group k0 + 4 l + w, k0 = ((tile start - offset
        // + phase) mod L) / 32, read without wrapping from the extended, de-interleaved rows.
        std::int64_t r = (static_cast<std::int64_t>(i) - static_cast<std::int64_t>(in_tile) + pr.phase) % pr.period;
        if (r < 0) r += pr.period;
        const auto k0 = static_cast<std::size_t>(r >> 5);
        // (no software prefetch of the tile's input, unlike apply_range: the hardware prefetcher
        // alone does better here; docs/performance.md)
        keep_words_with_planes<Isa>(seed, (g - in_tile) >> kBlockBits, [&](int p, typename Isa::V (&tv)[4]) {
            for (int w = 0; w < 4; ++w) {
                const std::size_t q = k0 + static_cast<std::size_t>(w);
                tv[w] = Isa::load(pr.planes + (static_cast<std::size_t>(p) * 4 + q % 4) * pr.row + q / 4);
            }
        }, pr.never + k0, words);
        const CT* sc = srep + (i % static_cast<std::size_t>(pr.features));  // srep[f + e] = scale of feature (f + e) mod F
        std::size_t e = 0;
        if constexpr (HasLanes<Isa, T>::value && std::is_same<T, CT>::value)
            e = apply_lanes<Isa>(x + i, y + i, count, reinterpret_cast<const std::uint8_t*>(words),
                                 static_cast<unsigned>(in_tile), sc, pr.nt);
        for (; e < count; ++e) y[i + e] = mul_keep(x[i + e], sc[e], keep_bit(words, static_cast<std::size_t>(in_tile) + e));
    });
    if constexpr (HasLanes<Isa, T>::value) {
        if (pr.nt) Isa::fence();  // order the streaming stores before anything that follows
    }
}

template <class Isa, class T>
TypedKernels<T> make_typed() {
    using S = typename TypedKernels<T>::S;
    return TypedKernels<T>{&apply_range<Isa, T, S>,     &continuous_apply_range<Isa, T>, &rates_apply_range<Isa, T>,
                           &rates_periodic_range<Isa, T>, &affine_range<Isa, T>,        &concrete_grad_entry<T>,
                           &run_ops<T>,                   &run_runs<Isa, T>,             &rate_runs<T>};
}

template <class Isa>
KernelTable make_table(const char* name) {
    return KernelTable{name,
                       &philox_batch<Isa>,
                       &mask_bytes_range<Isa>,
                       &mask_packed_range<Isa>,
                       &continuous_noise_range<Isa>,
                       &plane_bits<Isa>,
                       &uniform_words_range<Isa>,
                       make_typed<Isa, float>(),
                       make_typed<Isa, double>(),
                       make_typed<Isa, std::uint16_t>()};
}

}  // namespace DROPKIT_ISA_NS
}  // namespace dropkit
