// The host's execution layer for kernel_body.h: the CUDA kernels' own code run on the
// CPU, one block after another, for tests (fusedstats._cuda_emu). The thin part that
// differs from the GPU (exec_device.cuh):
//   - a region (blk.each) runs thread 0, then 1, ... 255 of the block; per-thread state
//     is an array, so a barrier between regions is implicit;
//   - the warp tree is array reads: at offset o, lane l merges what lane l + o held
//     before the step (its own value past the warp), exactly what shfl_down delivers;
//   - shared-memory and global atomics are plain adds (integers: order-free), the ticket
//     a sequential counter in the workspace's real bytes (so a stale one shows);
//   - fresh shared memory and thread state are filled with garbage, as on the device
//     nothing is zeroed for the kernel.
// Compiled with -ffp-contract=off and with FS_FMA meaning fma() (stats.h,
// FS_EMULATE_DEVICE_FMA), as nvcc compiles the device code with --fmad=false: every
// operation is then the same IEEE operation on both sides, so the emulation predicts
// the GPU's buffers bit for bit (NaN payloads and libm's log2 aside).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernel_body.h"

namespace fusedstats {
namespace emu {

using namespace fusedstats::cuda;  // NOLINT: the kernel body's names

// How each thread's span went (span.h): counted so tests can check they reach each path.
extern int64_t g_outcomes[kNumSpanOutcomes];

template <class T>
void fill_garbage(T* p, size_t n) {
  std::memset(static_cast<void*>(p), 0xA5, n * sizeof(T));
}

template <class TS>
class HostBlock {
 public:
  HostBlock(int64_t block, int64_t grid, TS* states) : block_(block), grid_(grid), ts_(states) {}

  int64_t block() const { return block_; }

  template <class F>
  void each(F&& f) {
    for (int t = 0; t < kThreads; ++t) f(t, ts_[t]);
  }

  template <class F>
  void first(F&& f) {
    f(ts_[0]);
  }

  void barrier() {}

  template <class Get>
  void reduce(Get get) {
    using R = std::remove_reference_t<decltype(get(ts_[0]))>;
    R before[kThreads];
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      for (int t = 0; t < kThreads; ++t) before[t] = get(ts_[t]);
      for (int t = 0; t < kThreads; ++t) {
        const int lane = t % kWarpSize;
        const int src = lane + offset < kWarpSize ? t + offset : t;
        rec_merge(get(ts_[t]), before[src]);
      }
    }
    R per_warp[kWarps];
    for (int w = 0; w < kWarps; ++w) per_warp[w] = get(ts_[w * kWarpSize]);
    for (int w = 1; w < kWarps; ++w) rec_merge(get(ts_[0]), per_warp[w]);
  }

  bool ticket(unsigned int* t) {
    unsigned int old;
    std::memcpy(&old, t, sizeof old);
    const unsigned int next = old + 1u;
    std::memcpy(t, &next, sizeof next);
    return old == static_cast<unsigned int>(grid_ - 1);
  }

  template <class T>
  static T load(const T* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static Vec16 load_vec(const Vec16* p) {
    Vec16 v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static Word load_l2(const Word* p) { return load(p); }
  static void shared_inc(uint32_t* p) { ++*p; }
  static void atomic_add(int64_t* p, int64_t v) { *p += v; }
  static void note(int32_t outcome) { ++g_outcomes[outcome]; }

 private:
  int64_t block_, grid_;
  TS* ts_;
};

// kernel_body.h's launcher: each launch runs its blocks in index order (the last block
// to take the ticket is then the last one; the result does not depend on which is).
struct HostLauncher {
  static constexpr int kInvalidValue = 1;  // cudaErrorInvalidValue
  bool rearm = true;                       // tests turn the memset off to see it matter

  int memset(void* p, int64_t bytes) {
    if (rearm) std::memset(p, 0, static_cast<size_t>(bytes));
    return 0;
  }

  template <class TS, class Run>
  static void blocks(int64_t grid, Run run) {
    std::vector<TS> states(kThreads);
    for (int64_t b = 0; b < grid; ++b) {
      fill_garbage(states.data(), states.size());
      HostBlock<TS> blk(b, grid, states.data());
      run(blk);
    }
  }

  template <bool kRows, bool kExt>
  int chunk(int64_t grid, const ChunkArgs& a) {
    auto shared = std::make_unique<ChunkShared<kExt>>();
    blocks<ChunkThread<kExt>>(grid, [&](HostBlock<ChunkThread<kExt>>& blk) {
      fill_garbage(shared.get(), 1);
      chunk_block<kRows, kExt>(blk, a, *shared);
    });
    return 0;
  }
  template <bool kExt>
  int finish(int64_t grid, const FinishArgs& a) {
    blocks<RecThread<kExt>>(grid, [&](HostBlock<RecThread<kExt>>& blk) { finish_block<kExt>(blk, a); });
    return 0;
  }
  template <bool kExt>
  int finalize(int64_t grid, const FinalizeArgs& a) {
    blocks<RecThread<kExt>>(grid, [&](HostBlock<RecThread<kExt>>& blk) { finalize_block<kExt>(blk, a); });
    return 0;
  }
  template <bool kExt>
  int merge(int64_t grid, const MergeArgs& a) {
    blocks<RecThread<kExt>>(grid, [&](HostBlock<RecThread<kExt>>& blk) { merge_block<kExt>(blk, a); });
    return 0;
  }
};

}  // namespace emu
}  // namespace fusedstats
