// DropBlock (docs/rng.md section 17): seeds from the Bernoulli stream at the valid block centres,
// each seed's block dropped, kept values scaled by numel / kept. Plain C++17, no Python.
//
// Three steps, each a pure function of the arguments (the same bits for any thread count):
//   1. keep bits of the noise positions offset .. offset + T - 1 (bernoulli_mask, T = N' C M);
//   2. per (n', c) map, in parallel: list the seeds (zero keep bits at valid centres), clear the
//      map, fill the block of every seed, count the dropped cells;
//   3. scale = T / kept (an exact integer count: per-chunk sums of integers), then
//      y = dropped ? +0 : x * scale in the compute type, in parallel.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/half.hpp"
#include "core/dropkit.hpp"
#include "core/pool.hpp"

namespace dropkit {

// The geometry of a call: x is (N, C, S0, S1, S2) or (N, S0, S1, S2, C); fewer than three spatial
// axes are padded in front with size 1 and block 1.
struct DropBlockShape {
    std::int64_t n, c;
    std::int64_t s[3];
    std::int64_t k[3];  // clipped block sizes (section 17.2)
    bool batchwise, channels_last;
};

namespace {

template <class F>
void parallel(std::size_t nchunks, int threads, F& f) {
    run_chunks(nchunks, threads, [](void* ctx, std::size_t i) { (*static_cast<F*>(ctx))(i); }, &f);
}

// Work buffer of the calling thread, kept between calls (first-touch page faults of a fresh
// allocation cost more than the work on it). Its contents never outlive a call.
std::uint8_t* scratch(std::size_t n, int slot) {
    thread_local std::vector<std::uint8_t> bufs[1];
    std::vector<std::uint8_t>& b = bufs[slot];
    if (b.size() < n) b.resize(n);
    return b.data();
}

// Sections 17.4-17.5 for the maps [m0, m1) of `bits` (keep bits in, dropped bytes out); returns
// the number of dropped cells. The seeds of a map (its zero bytes at valid centres, found with
// memchr: they are rare) are listed first, then the map is cleared and their blocks are filled.
std::uint64_t drop_maps(std::uint8_t* bits, const DropBlockShape& g, std::size_t m0, std::size_t m1) {
    const std::int64_t s0 = g.s[0], s1 = g.s[1], s2 = g.s[2];
    const std::int64_t k0 = g.k[0], k1 = g.k[1], k2 = g.k[2];
    const auto m = static_cast<std::size_t>(s0 * s1 * s2);
    thread_local std::vector<std::int64_t> seeds;
    std::uint64_t count = 0;
    for (std::size_t map = m0; map < m1; ++map) {
        std::uint8_t* keep = bits + map * m;
        seeds.clear();
        for (std::int64_t c0 = k0 / 2; c0 <= s0 - 1 - (k0 - 1) / 2; ++c0) {
            for (std::int64_t c1 = k1 / 2; c1 <= s1 - 1 - (k1 - 1) / 2; ++c1) {
                std::uint8_t* row = keep + (c0 * s1 + c1) * s2;
                std::uint8_t* p = row + k2 / 2;
                std::uint8_t* const end = row + (s2 - (k2 - 1) / 2);  // one past the last valid centre
                while (p < end) {
                    auto* z = static_cast<std::uint8_t*>(std::memchr(p, 0, static_cast<std::size_t>(end - p)));
                    if (z == nullptr) break;
                    seeds.push_back(z - keep);
                    p = z + 1;
                }
            }
        }
        std::memset(keep, 0, m);
        for (const std::int64_t idx : seeds) {
            const std::int64_t c2 = idx % s2, c1 = (idx / s2) % s1, c0 = idx / (s1 * s2);
            for (std::int64_t a0 = c0 - k0 / 2; a0 <= c0 + (k0 - 1) / 2; ++a0)
                for (std::int64_t a1 = c1 - k1 / 2; a1 <= c1 + (k1 - 1) / 2; ++a1)
                    std::memset(keep + (a0 * s1 + a1) * s2 + (c2 - k2 / 2), 1, static_cast<std::size_t>(k2));
        }
        if (!seeds.empty()) {
            std::uint64_t c = 0;
            for (std::size_t i = 0; i < m; ++i) c += keep[i];
            count += c;
        }
    }
    return count;
}

// y[r] = d[r] ? +0 : x[r] * s for a contiguous run. For float and double the product's bits are
// ANDed with 0 - (d == 0) (the mask selects; no branch, so the loop vectorises); float16 goes
// through binary32 and back (docs/rng.md section 5).
template <class E, class U>
void run_select(const E* x, E* y, const std::uint8_t* __restrict d, std::size_t len, E s) {
    for (std::size_t r = 0; r < len; ++r) {
        const E v = x[r] * s;
        U u;
        std::memcpy(&u, &v, sizeof u);
        u &= static_cast<U>(static_cast<U>(d[r]) - U{1});
        std::memcpy(y + r, &u, sizeof u);
    }
}

struct F32 {
    using E = float;
    using C = float;
    static C load(E v) { return v; }
    static E store(C v) { return v; }
    static void run(const E* x, E* y, const std::uint8_t* d, std::size_t len, C s) {
        run_select<float, std::uint32_t>(x, y, d, len, s);
    }
};
struct F64 {
    using E = double;
    using C = double;
    static C load(E v) { return v; }
    static E store(C v) { return v; }
    static void run(const E* x, E* y, const std::uint8_t* d, std::size_t len, C s) {
        run_select<double, std::uint64_t>(x, y, d, len, s);
    }
};
struct F16 {
    using E = std::uint16_t;
    using C = float;
    static C load(E v) { return half_to_float(v); }
    static E store(C v) { return float_to_half(v); }
    static void run(const E* x, E* y, const std::uint8_t* d, std::size_t len, C s) {
        for (std::size_t r = 0; r < len; ++r) y[r] = d[r] ? E{0} : float_to_half(half_to_float(x[r]) * s);
    }
};

template <class P>
void run(const typename P::E* x, typename P::E* y, const DropBlockShape& g, std::uint64_t t, std::uint64_t seed,
         std::uint64_t offset, int threads, Simd simd) {
    using C = typename P::C;
    const auto m = static_cast<std::size_t>(g.s[0] * g.s[1] * g.s[2]);
    const auto c = static_cast<std::size_t>(g.c);
    const auto nn = static_cast<std::size_t>(g.batchwise ? 1 : g.n);
    const std::size_t maps = nn * c, total = maps * m;
    const std::size_t nx = static_cast<std::size_t>(g.n) * c * m;
    if (nx == 0) return;
    const int nt = nx >= kParallelCutoff ? threads : 1;
    std::uint8_t* bits = scratch(total, 0);
    if (t >= (std::uint64_t{1} << 32)) std::memset(bits, 0, total);  // every valid centre a seed
    else bernoulli_mask(bits, total, false, t, seed, offset, nt, simd);

    const std::size_t per = std::max<std::size_t>(1, kChunk / m);
    const std::size_t nmc = (maps + per - 1) / per;
    std::vector<std::uint64_t> counts(nmc, 0);
    auto step2 = [&](std::size_t ch) {
        counts[ch] = drop_maps(bits, g, ch * per, std::min(maps, (ch + 1) * per));
    };
    parallel(nmc, nt, step2);
    std::uint64_t dropped = 0;
    for (std::uint64_t v : counts) dropped += v;
    const std::uint64_t kept = total - dropped;
    // Section 17.6: T / kept rounded once to binary64 (both below 2^53), then to the compute type.
    const C s = kept == 0 ? C(0) : static_cast<C>(static_cast<double>(total) / static_cast<double>(kept));
    const typename P::E zero = P::store(C(0));

    const std::size_t nxc = (nx + kChunk - 1) / kChunk;
    auto step3 = [&](std::size_t ch) {
        const std::size_t i0 = ch * kChunk, i1 = std::min(nx, i0 + kChunk);
        if (!g.channels_last) {  // element i of x uses mask cell i mod T (T = nx without batchwise)
            for (std::size_t i = i0; i < i1;) {
                const std::size_t j0 = i % total;
                const std::size_t len = std::min(i1 - i, total - j0);  // a run without wrap-around
                P::run(x + i, y + i, bits + j0, len, s);
                i += len;
            }
        } else {  // x[n, s, c] uses mask cell ((n' C + c) M + s)
            std::size_t ci = i0 % c, si = (i0 / c) % m, ni = i0 / (c * m);
            for (std::size_t i = i0; i < i1; ++i) {
                const std::size_t j = ((g.batchwise ? 0 : ni) * c + ci) * m + si;
                const C v = P::load(x[i]) * s;
                y[i] = bits[j] ? zero : P::store(v);
                if (++ci == c) {
                    ci = 0;
                    if (++si == m) {
                        si = 0;
                        ++ni;
                    }
                }
            }
        }
    };
    parallel(nxc, nt, step3);
}

}  // namespace

void drop_block_apply(const float* x, float* y, const DropBlockShape& g, std::uint64_t t, std::uint64_t seed,
                      std::uint64_t offset, int threads, Simd simd) {
    run<F32>(x, y, g, t, seed, offset, threads, simd);
}
void drop_block_apply(const double* x, double* y, const DropBlockShape& g, std::uint64_t t, std::uint64_t seed,
                      std::uint64_t offset, int threads, Simd simd) {
    run<F64>(x, y, g, t, seed, offset, threads, simd);
}
void drop_block_apply_f16(const std::uint16_t* x, std::uint16_t* y, const DropBlockShape& g, std::uint64_t t,
                          std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    run<F16>(x, y, g, t, seed, offset, threads, simd);
}

}  // namespace dropkit
