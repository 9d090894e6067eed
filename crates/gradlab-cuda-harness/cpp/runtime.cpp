// Runs one kernel launch on the CPU: every thread of a block is an OS thread
// (from a pool of pthreads with small stacks, kept between launches), the
// blocks of the grid run one after another on the same threads, and
// launches are serialised (one block runs at a time in the whole process,
// which is what makes __shared__ statics correct).
//
// Waiting is on Linux futexes: a barrier's last arrival bumps a generation
// word and wakes the waiters, which return without taking any lock, so a
// barrier costs one wake-up per thread and no convoy.
#include "registry.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace harness {
namespace {

// How long a thread waits at a barrier before declaring the kernel stuck (a
// barrier not reached by every live thread of the block is a kernel bug,
// which would otherwise hang the test).
constexpr int kStuckSeconds = 120;

void futex_wait(std::atomic<unsigned>* word, unsigned expected, const char* what) {
    const timespec step{1, 0};
    for (int waited = 0; word->load(std::memory_order_acquire) == expected; ++waited) {
        if (waited >= kStuckSeconds) {
            std::fprintf(stderr,
                         "gradlab cpu harness: %s stuck for %ds: a barrier that not every live "
                         "thread of the block reaches\n",
                         what, kStuckSeconds);
            std::abort();
        }
        syscall(SYS_futex, reinterpret_cast<unsigned*>(word), FUTEX_WAIT_PRIVATE, expected, &step,
                nullptr, 0);
    }
}

void futex_wake_all(std::atomic<unsigned>* word) {
    syscall(SYS_futex, reinterpret_cast<unsigned*>(word), FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr,
            nullptr, 0);
}

// A reusable barrier whose party count shrinks when a thread leaves (a CUDA
// thread that returns no longer takes part in __syncthreads).
class Barrier {
  public:
    void reset(int parties) {
        std::lock_guard<std::mutex> g(m_);
        parties_ = parties;
        arrived_ = 0;
    }

    // Waits for every party; the last to arrive runs `completion` (if any)
    // before the others are released.
    template <class F>
    void arrive_and_wait(const char* what, F&& completion) {
        unsigned gen;
        {
            std::lock_guard<std::mutex> g(m_);
            gen = generation_.load(std::memory_order_relaxed);
            if (++arrived_ >= parties_) {
                completion();
                release();
                return;
            }
        }
        futex_wait(&generation_, gen, what);
    }
    void arrive_and_wait(const char* what) {
        arrive_and_wait(what, [] {});
    }

    // The calling thread stops taking part; may complete a pending barrier.
    void leave() {
        std::lock_guard<std::mutex> g(m_);
        --parties_;
        if (arrived_ > 0 && arrived_ >= parties_) release();
    }

  private:
    // Called with m_ held.
    void release() {
        arrived_ = 0;
        generation_.fetch_add(1, std::memory_order_release);
        futex_wake_all(&generation_);
    }

    std::mutex m_;
    std::atomic<unsigned> generation_{0};
    int parties_ = 0;
    int arrived_ = 0;
};

struct Warp {
    Barrier barrier;
    // Two slot arrays used in turn: a lane can only write a slot array again
    // after every lane has passed the next barrier, i.e. has read this one.
    std::uint64_t slots[2][32] = {};
    int size = 32;
};

struct Launch {
    dim3 grid{}, block{};
    int threads = 0;
    const std::function<void()>* body = nullptr;
    Barrier block_barrier;   // __syncthreads
    Barrier between_blocks;  // every thread done with a block
    std::vector<std::unique_ptr<Warp>> warps;
    std::atomic<int> finished{0};
    std::atomic<unsigned> done_word{0};

    void reset_block_state() {
        block_barrier.reset(threads);
        for (auto& w : warps) w->barrier.reset(w->size);
    }
};

thread_local Launch* t_launch = nullptr;
thread_local Warp* t_warp = nullptr;
thread_local int t_lane = 0;
thread_local int t_phase = 0;

void run_blocks(Launch& L, int tid) {
    t_launch = &L;
    t_warp = L.warps[tid / 32].get();
    t_lane = tid % 32;
    threadIdx = {(unsigned)(tid % L.block.x), (unsigned)((tid / L.block.x) % L.block.y),
                 (unsigned)(tid / (L.block.x * L.block.y))};
    blockDim = L.block;
    gridDim = L.grid;
    const unsigned long long blocks = (unsigned long long)L.grid.x * L.grid.y * L.grid.z;
    for (unsigned long long b = 0; b < blocks; ++b) {
        blockIdx = {(unsigned)(b % L.grid.x), (unsigned)((b / L.grid.x) % L.grid.y),
                    (unsigned)(b / ((unsigned long long)L.grid.x * L.grid.y))};
        t_phase = 0;
        (*L.body)();
        L.block_barrier.leave();
        t_warp->barrier.leave();
        L.between_blocks.arrive_and_wait("end of block", [&] { L.reset_block_state(); });
    }
}

// A pool of worker threads, each woken through its own futex word.
struct Worker {
    std::atomic<unsigned> wake{0};
    Launch* launch = nullptr;
    int tid = 0;
};

std::vector<std::unique_ptr<Worker>> g_workers;

void* worker_main(void* arg) {
    Worker& w = *static_cast<Worker*>(arg);
    unsigned seen = 0;
    for (;;) {
        while (w.wake.load(std::memory_order_acquire) == seen) {
            syscall(SYS_futex, reinterpret_cast<unsigned*>(&w.wake), FUTEX_WAIT_PRIVATE, seen,
                    nullptr, nullptr, 0);
        }
        seen = w.wake.load(std::memory_order_acquire);
        Launch& L = *w.launch;
        run_blocks(L, w.tid);
        if (L.finished.fetch_add(1) + 1 == L.threads) {
            L.done_word.store(1, std::memory_order_release);
            futex_wake_all(&L.done_word);
        }
    }
    return nullptr;
}

void grow_pool(int threads) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    while ((int)g_workers.size() < threads) {
        g_workers.push_back(std::make_unique<Worker>());
        pthread_t handle;
        if (pthread_create(&handle, &attr, worker_main, g_workers.back().get()) != 0) {
            std::fprintf(stderr, "gradlab cpu harness: cannot start worker thread %zu\n",
                         g_workers.size());
            std::abort();
        }
        pthread_detach(handle);
    }
    pthread_attr_destroy(&attr);
}

std::mutex g_launch_mutex;

}  // namespace

void sync_block() { t_launch->block_barrier.arrive_and_wait("__syncthreads"); }

void sync_warp() { t_warp->barrier.arrive_and_wait("__syncwarp"); }

std::uint64_t warp_exchange(std::uint64_t mine, int src_lane) {
    Warp& w = *t_warp;
    std::uint64_t* slots = w.slots[t_phase];
    t_phase ^= 1;
    slots[t_lane] = mine;
    w.barrier.arrive_and_wait("warp shuffle");
    return (src_lane >= 0 && src_lane < w.size) ? slots[src_lane] : mine;
}

int lane_id() { return t_lane; }

int run_grid(dim3 grid, dim3 block, const std::function<void()>& body, std::string& err) {
    const long long threads = (long long)block.x * block.y * block.z;
    if (threads <= 0 || threads > 1024) {
        err = "a block must have 1 to 1024 threads, got " + std::to_string(threads);
        return 1;
    }
    if ((long long)grid.x * grid.y * grid.z <= 0) {
        err = "the grid has no blocks";
        return 1;
    }
    if (grid.y > 65535 || grid.z > 65535) {
        err = "grid y and z are limited to 65535 (as on the GPU)";
        return 1;
    }
    std::lock_guard<std::mutex> serial(g_launch_mutex);
    Launch L;
    L.grid = grid;
    L.block = block;
    L.threads = (int)threads;
    L.body = &body;
    for (int w = 0; w * 32 < L.threads; ++w) {
        L.warps.push_back(std::make_unique<Warp>());
        L.warps.back()->size = std::min(32, L.threads - w * 32);
    }
    L.reset_block_state();
    L.between_blocks.reset(L.threads);
    grow_pool(L.threads);
    for (int t = 0; t < L.threads; ++t) {
        Worker& w = *g_workers[t];
        w.launch = &L;
        w.tid = t;
        w.wake.fetch_add(1, std::memory_order_release);
        syscall(SYS_futex, reinterpret_cast<unsigned*>(&w.wake), FUTEX_WAKE_PRIVATE, 1, nullptr,
                nullptr, 0);
    }
    while (L.done_word.load(std::memory_order_acquire) == 0) {
        syscall(SYS_futex, reinterpret_cast<unsigned*>(&L.done_word), FUTEX_WAIT_PRIVATE, 0,
                nullptr, nullptr, 0);
    }
    return 0;
}

}  // namespace harness

extern "C" int gradlab_harness_launch(const char* file, const char* kernel, const unsigned* grid,
                                      const unsigned* block, const void* const* params,
                                      const std::size_t* sizes, int count, char* err,
                                      std::size_t err_len) {
    std::string message;
    const harness::KernelEntry* entry = harness::find_kernel(file, kernel);
    int rc = 1;
    if (!entry) {
        message = std::string("the CPU harness has no kernel ") + kernel + " in " + file +
                  " (kernels with inline PTX run on a GPU only)";
    } else {
        rc = entry->launch(dim3{grid[0], grid[1], grid[2]}, dim3{block[0], block[1], block[2]},
                           params, sizes, count, message);
    }
    if (rc != 0 && err && err_len > 0) {
        std::snprintf(err, err_len, "%s", message.c_str());
    }
    return rc;
}

extern "C" std::size_t gradlab_harness_kernel_count(const char* file) {
    std::size_t n = 0;
    harness::kernels_of(file, &n);
    return n;
}

extern "C" const char* gradlab_harness_kernel_name(const char* file, std::size_t i) {
    std::size_t n = 0;
    const harness::KernelEntry* table = harness::kernels_of(file, &n);
    return (table && i < n) ? table[i].name : nullptr;
}
