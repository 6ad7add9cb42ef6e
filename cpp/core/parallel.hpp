// What every kernel entry shares: the SIMD target's function table and the chunked parallel
// driver (dispatch.cpp and engine.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/isa_table.hpp"
#include "core/dropkit.hpp"
#include "core/pool.hpp"

namespace dropkit {
namespace detail {

inline const KernelTable& table(Simd s) {
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

inline bool use_streaming(Store store, std::size_t bytes) {
    return store == Store::streaming || (store == Store::automatic && bytes >= streaming_threshold_bytes());
}


}  // namespace detail
}  // namespace dropkit
