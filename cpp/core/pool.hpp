// The thread pool behind every parallel kernel: work split so that the caller never waits for a
// thread that has not started.
//
// A call is cut into chunks. The calling thread publishes the job and starts on the chunks at once;
// pool workers that are awake claim chunks from the same counter. When the counter runs out the
// caller waits only for chunks that a worker has already claimed (each one a few microseconds of
// work). A worker that is asleep, slow to wake (milliseconds on some VMs) or descheduled by another
// process claims nothing, and the call costs what one thread costs, never more than that plus the
// posting. On a quiet machine, with workers spinning between back-to-back calls, the chunks split
// evenly. (An OpenMP parallel region cannot do this: its closing barrier waits for every thread of
// the team, started or not.)
//
// A busy machine: a worker descheduled in the middle of a claimed chunk makes the caller wait for
// it. The pool notices (the wait was long against the caller's own chunk time) and runs the next
// jobs on the caller alone for a while (constants below).
//
// Which thread runs which chunk never changes a bit: chunk boundaries are fixed by the caller.
#pragma once
#include <cstddef>

namespace dropkit {

// Runs fn(ctx, c) once for every c in [0, nchunks), on the calling thread and at most
// threads - 1 pool workers; returns when every chunk is done. fn must not throw. Callers from
// several threads at once are safe: a call that finds the pool busy runs all of its chunks itself.
void run_chunks(std::size_t nchunks, int threads, void (*fn)(void* ctx, std::size_t chunk), void* ctx);

// How long an idle worker spins (checking for a new job) before it sleeps in the kernel.
inline constexpr long kPoolSpinMicroseconds = 200;

// A job whose caller, out of chunks, waited longer than 4 of its own chunk times plus this slack
// for a worker's chunk had a straggler (a worker descheduled mid-chunk): the pool then runs jobs
// on the caller alone for a back-off that starts at kPoolBackoffFirstMilliseconds and doubles, up
// to kPoolBackoffMaxMilliseconds, while stragglers keep appearing; a clean job resets it.
inline constexpr long kPoolStragglerSlackMicroseconds = 30;
inline constexpr long kPoolBackoffFirstMilliseconds = 20;
inline constexpr long kPoolBackoffMaxMilliseconds = 200;

// Jobs of fewer chunks wake sleeping workers only in a burst: when the previous job started less
// than kPoolBurstMicroseconds before (an isolated call after a pause costs what one thread costs).
inline constexpr std::size_t kPoolWakeMinChunks = 256;
inline constexpr long kPoolBurstMicroseconds = 2000;

// Upper bound on pool workers (threads - 1); larger requests are clamped, never an error here.
inline constexpr int kPoolMaxWorkers = 255;

}  // namespace dropkit
