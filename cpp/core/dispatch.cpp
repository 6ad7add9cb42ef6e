// Runtime dispatch over SIMD targets and the OpenMP driver shared by every kernel.
#include "core/kernels.hpp"

#include <omp.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/isa_table.hpp"
#include "core/pool.hpp"

namespace dropkit {

const char* simd_name(Simd s) {
    switch (s) {
        case Simd::scalar: return "scalar";
        case Simd::avx2: return "avx2";
        case Simd::avx512: return "avx512";
    }
    return "unknown";
}

bool simd_available(Simd s) {
    switch (s) {
        case Simd::scalar: return true;
        case Simd::avx2:
#if defined(DROPKIT_HAVE_AVX2)
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#else
            return false;
#endif
        case Simd::avx512:
#if defined(DROPKIT_HAVE_AVX512)
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c");
#else
            return false;
#endif
    }
    return false;
}

Simd simd_best() {
    if (simd_available(Simd::avx512)) return Simd::avx512;
    if (simd_available(Simd::avx2)) return Simd::avx2;
    return Simd::scalar;
}

namespace {

const KernelTable& table(Simd s) {
    if (!simd_available(s)) throw std::invalid_argument(std::string("SIMD target not available: ") + simd_name(s));
    switch (s) {
#if defined(DROPKIT_HAVE_AVX512)
        case Simd::avx512: return kernels_avx512();
#endif
#if defined(DROPKIT_HAVE_AVX2)
        case Simd::avx2: return kernels_avx2();
#endif
        default: return kernels_scalar();
    }
}

// Split [0, n) into chunks and run body(i0, i1) on each, on up to `threads` threads (pool.hpp:
// the caller works from the start and never waits for a thread that has not begun). Chunk
// boundaries sit at positions (offset + i) that are multiples of kChunk, so no tile is generated
// twice; with index_aligned they sit at indices that are multiples of kChunk instead (packed
// output, where two chunks must never share a byte). The bits never depend on the split.
template <class Body>
void parallel_chunks(std::size_t n, std::uint64_t offset, int threads, bool index_aligned, Body&& body) {
    if (n == 0) return;
    if (threads <= 1 || n < kParallelCutoff) {
        body(std::size_t{0}, n);
        return;
    }
    struct Split {
        std::remove_reference_t<Body>* body;
        std::size_t n, first, lead;
    };
    const std::size_t head = index_aligned ? 0 : static_cast<std::size_t>((kChunk - offset % kChunk) % kChunk);
    const std::size_t first = head < n ? head : n;
    Split split{&body, n, first, std::size_t{first > 0 ? 1u : 0u}};
    const std::size_t nchunks = split.lead + (n - first + kChunk - 1) / kChunk;
    run_chunks(nchunks, threads, [](void* v, std::size_t c) {
        const Split& s = *static_cast<const Split*>(v);
        if (s.lead && c == 0) {
            (*s.body)(std::size_t{0}, s.first);
            return;
        }
        const std::size_t i0 = s.first + (c - s.lead) * kChunk;
        (*s.body)(i0, s.n - i0 < kChunk ? s.n : i0 + kChunk);
    }, &split);
}

bool use_streaming(Store store, std::size_t bytes) {
    return store == Store::streaming || (store == Store::automatic && bytes >= streaming_threshold_bytes());
}

}  // namespace

std::size_t streaming_threshold_bytes() {
    static const std::size_t bytes = [] {
        // Linux's sysfs (what lscpu shows) first: inside a VM, glibc's sysconf may report the
        // host's whole package (320 MiB on the EPYC this was written on, against 32 MiB seen).
        long llc = -1;
        for (int index = 0; index < 8; ++index) {
            const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
            std::ifstream level(dir + "level"), size(dir + "size");
            int lv = 0;
            long kib = 0;
            char unit = 0;
            if (level >> lv && size >> kib >> unit && unit == 'K' && lv >= 2) llc = kib * 1024;
        }
#if defined(_SC_LEVEL3_CACHE_SIZE)
        if (llc <= 0) llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
        if (llc <= 0) return std::size_t{32} << 20;
        // Input plus output (twice the output) reach 3/4 of the cache: output >= 3/8 of it.
        // Measured here (32 MiB L3, fp32): streaming wins from a 16 MiB output, loses at 8 MiB.
        const std::size_t bytes3_8 = static_cast<std::size_t>(llc) / 8 * 3;
        return bytes3_8 > (std::size_t{4} << 20) ? bytes3_8 : std::size_t{4} << 20;
    }();
    return bytes;
}

void philox4x32_10(const std::uint32_t* ctr, const std::uint32_t* key, std::uint32_t* out,
                   std::size_t n, Simd simd) {
    table(simd).philox(ctr, key, out, n);
}

void bernoulli_apply(const float* x, float* y, std::size_t n, std::uint64_t t, float s,
                     std::uint64_t seed, std::uint64_t offset, int threads, Simd simd, Store store) {
    const auto fn = table(simd).apply_f32;
    const bool nt = use_streaming(store, n * sizeof *y);
    parallel_chunks(n, offset, threads, false,
                    [&](std::size_t i0, std::size_t i1) { fn(x, y, i0, i1, t, s, seed, offset, nt); });
}

void bernoulli_apply(const double* x, double* y, std::size_t n, std::uint64_t t, double s,
                     std::uint64_t seed, std::uint64_t offset, int threads, Simd simd, Store store) {
    const auto fn = table(simd).apply_f64;
    const bool nt = use_streaming(store, n * sizeof *y);
    parallel_chunks(n, offset, threads, false,
                    [&](std::size_t i0, std::size_t i1) { fn(x, y, i0, i1, t, s, seed, offset, nt); });
}

void bernoulli_apply_f16(const std::uint16_t* x, std::uint16_t* y, std::size_t n, std::uint64_t t,
                         float s, std::uint64_t seed, std::uint64_t offset, int threads, Simd simd,
                         Store store) {
    const auto fn = table(simd).apply_f16;
    const bool nt = use_streaming(store, n * sizeof *y);
    parallel_chunks(n, offset, threads, false,
                    [&](std::size_t i0, std::size_t i1) { fn(x, y, i0, i1, t, s, seed, offset, nt); });
}

void bernoulli_mask(std::uint8_t* out, std::size_t n, bool packed, std::uint64_t t,
                    std::uint64_t seed, std::uint64_t offset, int threads, Simd simd) {
    const KernelTable& k = table(simd);
    const auto fn = packed ? k.mask_packed : k.mask_bytes;
    parallel_chunks(n, offset, threads, packed,
                    [&](std::size_t i0, std::size_t i1) { fn(out, i0, i1, t, seed, offset); });
}

int default_threads() { return omp_get_max_threads(); }

}  // namespace dropkit
