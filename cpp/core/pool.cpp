// The pool of pool.hpp. One job at a time; its state is a handful of atomics:
//
//   ticket = (generation << 40) | remaining      remaining chunks of the current job count down;
//                                                 a claim is a compare-and-swap that takes one
//   done                                          chunks finished (by anyone) in the current job
//   fn, ctx, n, workers                           the job, written before its ticket is published
//
// A worker claims first and reads the job after: a successful claim proves the job is live (it
// cannot finish before the claimed chunk does), so what the worker reads is that job's, even if its
// generation number has wrapped around while the worker slept.
#include "core/pool.hpp"

#include <sched.h>
#include <pthread.h>
#include <climits>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DROPKIT_PAUSE() _mm_pause()
#else
#define DROPKIT_PAUSE() ((void)0)
#endif

namespace dropkit {
namespace {

constexpr unsigned kRemainingBits = 40;
constexpr int kCallerSpins = 2000;  // pause instructions (tens of microseconds) before yielding
constexpr std::uint64_t kRemainingMask = (std::uint64_t{1} << kRemainingBits) - 1;

using ChunkFn = void (*)(void*, std::size_t);
using Clock = std::chrono::steady_clock;

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void futex_wake_all(std::atomic<std::uint32_t>* word) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// The CPUs this process may run on, as when dropkit first asked.
const cpu_set_t& process_cpus() {
    static const cpu_set_t set = [] {
        cpu_set_t s;
        CPU_ZERO(&s);
        if (sched_getaffinity(0, sizeof s, &s) != 0)
            for (int c = 0; c < CPU_SETSIZE; ++c) CPU_SET(c, &s);
        return s;
    }();
    return set;
}

// CPUs this process may run on: workers beyond that would only take turns with the caller.
int usable_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    const unsigned h = std::thread::hardware_concurrency();
    return h > 0 ? static_cast<int>(h) : 1;
}

struct Pool {
    // Each line written by one side and read by the other gets a cache line of its own, so that a
    // spinning worker does not steal the line the caller is counting on.
    alignas(64) std::atomic<std::uint64_t> ticket{0};
    alignas(64) std::atomic<std::size_t> done{0};
    alignas(64) std::atomic<ChunkFn> fn{nullptr};
    std::atomic<void*> ctx{nullptr};
    std::atomic<std::size_t> n{0};
    std::atomic<int> workers{0};          // workers with id < this take part in the current job
    std::atomic<int> caller_cpu{-1};      // the CPU the current job's caller posted it from
    alignas(64) std::atomic<std::uint32_t> wake{0};   // futex word: bumped by every job
    alignas(64) std::atomic<int> sleepers{0};
    alignas(64) char pad_[1] = {};
    std::uint64_t generation = 0;         // only the caller holding `busy` touches it
    std::mutex busy;                      // one job at a time
    std::mutex grow;
    int started = 0;                      // workers started (guarded by grow)
    std::atomic<Clock::rep> alone_until{0};  // run without workers until then (steady clock)
    Clock::duration penalty{0};           // the last back-off (guarded by busy)
    Clock::time_point last_job{};         // start of the previous job (guarded by busy)

    // Claim one chunk of generation gen; false when none is left (or the job is another's).
    bool claim(std::uint64_t gen, std::size_t& chunk) {
        std::uint64_t t = ticket.load(std::memory_order_acquire);
        while ((t >> kRemainingBits) == gen && (t & kRemainingMask) != 0) {
            if (ticket.compare_exchange_weak(t, t - 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
                chunk = n.load(std::memory_order_relaxed) - static_cast<std::size_t>(t & kRemainingMask);
                return true;
            }
        }
        return false;
    }

    // A woken worker can land on the caller's own CPU (the scheduler's wake-up affinity), where
    // the two only take turns while another CPU idles: the worker then moves itself off that CPU
    // (its affinity: every usable CPU but that one), so the chunks really run in parallel.
    static void move_off(int cpu) {
        if (cpu < 0 || sched_getcpu() != cpu) return;
        cpu_set_t set = process_cpus();  // the CPUs the process may use, not an earlier move's
        CPU_CLR(cpu, &set);
        if (CPU_COUNT(&set) > 0) sched_setaffinity(0, sizeof set, &set);
    }

    void worker(int id) {
        std::uint32_t seen = wake.load(std::memory_order_acquire);
        for (;;) {
            // Wait for the next job: spin a little (back-to-back calls), then sleep in the kernel.
            const auto t0 = std::chrono::steady_clock::now();
            const auto spin = std::chrono::microseconds(kPoolSpinMicroseconds);
            for (int k = 0; wake.load(std::memory_order_acquire) == seen; ++k) {
                DROPKIT_PAUSE();
                if ((k & 255) == 255 && std::chrono::steady_clock::now() - t0 > spin) {
                    sleepers.fetch_add(1, std::memory_order_seq_cst);
                    if (wake.load(std::memory_order_seq_cst) == seen) futex_wait(&wake, seen);
                    sleepers.fetch_sub(1, std::memory_order_seq_cst);
                    k = 0;
                }
            }
            seen = wake.load(std::memory_order_acquire);
            const std::uint64_t gen = ticket.load(std::memory_order_acquire) >> kRemainingBits;
            move_off(caller_cpu.load(std::memory_order_relaxed));
            if (id >= workers.load(std::memory_order_acquire)) continue;
            std::size_t chunk;
            while (claim(gen, chunk)) {
                fn.load(std::memory_order_relaxed)(ctx.load(std::memory_order_relaxed), chunk);
                done.fetch_add(1, std::memory_order_release);
            }
        }
    }

    // Start workers up to `want`; returns how many there are (fewer if the OS refuses threads).
    int ensure(int want) {
        std::lock_guard<std::mutex> lock(grow);
        while (started < want) {
            try {
                std::thread([this, id = started] { worker(id); }).detach();
            } catch (const std::system_error&) {
                break;
            }
            ++started;
        }
        return started < want ? started : want;
    }

    // One job of at most 2^40 chunks, the caller holding `busy`.
    void run(std::size_t nchunks, int nworkers, ChunkFn f, void* c) {
        fn.store(f, std::memory_order_relaxed);
        ctx.store(c, std::memory_order_relaxed);
        n.store(nchunks, std::memory_order_relaxed);
        workers.store(nworkers, std::memory_order_relaxed);
        caller_cpu.store(sched_getcpu(), std::memory_order_relaxed);
        done.store(0, std::memory_order_relaxed);
        const std::uint64_t gen = generation = (generation + 1) & ((std::uint64_t{1} << (64 - kRemainingBits)) - 1);
        ticket.store((gen << kRemainingBits) | nchunks, std::memory_order_release);
        wake.fetch_add(1, std::memory_order_seq_cst);
        // Waking a sleeper costs the caller a system call and the worker arrives much later:
        // worth it for long jobs, and for a burst of calls (the next ones find the worker awake). An isolated short call runs with the workers that happen
        // to be spinning, i.e. at the cost of one thread.
        const auto now = Clock::now();
        const bool burst = now - last_job < std::chrono::microseconds(kPoolBurstMicroseconds);
        last_job = now;
        const bool woke = (nchunks >= kPoolWakeMinChunks || burst) && sleepers.load(std::memory_order_seq_cst) > 0;
        if (woke) futex_wake_all(&wake);
        const auto t0 = Clock::now();
        std::size_t chunk, mine = 0;
        while (claim(gen, chunk)) {
            f(c, chunk);
            done.fetch_add(1, std::memory_order_release);
            ++mine;
        }
        const auto t1 = Clock::now();
        // Only chunks that a running worker has claimed are left: a few microseconds each, unless
        // that worker was descheduled in the middle of one (another process wants its core).
        // Spin a little; then yield, so that a worker sharing this CPU (the scheduler put them
        // together) can finish its chunk instead of waiting for the next tick.
        for (int k = 0; done.load(std::memory_order_acquire) != nchunks; ++k) {
            if (k < kCallerSpins)
                DROPKIT_PAUSE();
            else
                sched_yield();
        }
        const auto waited = Clock::now() - t1;
        const auto per_chunk = mine > 0 ? (t1 - t0) / static_cast<long>(mine) : Clock::duration::zero();
        // (A worker woken by this job may start its first chunk late and slowly: not a straggler.)
        if (!woke && waited > 4 * per_chunk + std::chrono::microseconds(kPoolStragglerSlackMicroseconds)) {
            // A straggler: run alone for a while (doubling while it keeps happening) rather than
            // wait for a core that someone else is using.
            penalty = penalty.count() == 0 ? std::chrono::milliseconds(kPoolBackoffFirstMilliseconds)
                                           : std::min<Clock::duration>(2 * penalty, std::chrono::milliseconds(kPoolBackoffMaxMilliseconds));
            alone_until.store((Clock::now() + penalty).time_since_epoch().count(), std::memory_order_relaxed);
        } else {
            penalty = Clock::duration::zero();
        }
    }

    // False while a recent job found a straggler (see run).
    bool may_share() const {
        return Clock::now().time_since_epoch().count() >= alone_until.load(std::memory_order_relaxed);
    }
};

// Leaked on purpose: detached workers may still be spinning at exit. A forked child gets a fresh
// pool (the parent's workers do not exist in it).
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_pool_once;

Pool& pool() {
    std::call_once(g_pool_once, [] {
        g_pool.store(new Pool, std::memory_order_release);
        pthread_atfork(nullptr, nullptr, [] { g_pool.store(new Pool, std::memory_order_release); });
    });
    return *g_pool.load(std::memory_order_acquire);
}

}  // namespace

void run_chunks(std::size_t nchunks, int threads, void (*fn)(void*, std::size_t), void* ctx) {
    int want = threads - 1;
    if (want > kPoolMaxWorkers) want = kPoolMaxWorkers;
    static const int cpus = usable_cpus();
    if (want > cpus - 1) want = cpus - 1;
    if (nchunks == 0) return;
    if (static_cast<std::size_t>(want) > nchunks - 1) want = static_cast<int>(nchunks - 1);
    Pool* p = want > 0 ? &pool() : nullptr;
    std::unique_lock<std::mutex> lock;
    if (p) lock = std::unique_lock<std::mutex>(p->busy, std::try_to_lock);
    if (!p || !p->may_share() || !lock.owns_lock() || (want = p->ensure(want)) == 0) {
        for (std::size_t c = 0; c < nchunks; ++c) fn(ctx, c);
        return;
    }
    for (std::size_t first = 0; first < nchunks; first += kRemainingMask) {
        const std::size_t count = nchunks - first < kRemainingMask ? nchunks - first : kRemainingMask;
        if (first == 0 && count == nchunks) {
            p->run(count, want, fn, ctx);
        } else {  // more than 2^40 chunks: one job per 2^40 - 1 of them
            struct Slice { void (*fn)(void*, std::size_t); void* ctx; std::size_t first; } s{fn, ctx, first};
            p->run(count, want, [](void* v, std::size_t c) {
                auto* sl = static_cast<Slice*>(v);
                sl->fn(sl->ctx, sl->first + c);
            }, &s);
        }
    }
}

}  // namespace dropkit
