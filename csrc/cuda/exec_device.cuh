// The GPU's execution layer for kernel_body.h: a block object whose thread state lives in
// registers, regions that are just the thread's own code, the warp-shuffle and
// shared-memory tree, the ticket. The host emulation (csrc/emu/exec_host.h) implements
// the same interface with thread loops and arrays; kernel_body.h is the one source.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernel_body.h"

namespace fusedstats {
namespace cuda {

template <class R>
__device__ __forceinline__ R shfl_down_rec(const R& r, int offset) {
  constexpr unsigned kAll = 0xffffffffu;
  constexpr int kWords = static_cast<int>(sizeof(R) / sizeof(Word));
  Word w[kWords];
  memcpy(w, &r, sizeof r);
#pragma unroll
  for (int i = 0; i < kWords; ++i) w[i] = __shfl_down_sync(kAll, w[i], offset);
  R o;
  memcpy(&o, w, sizeof o);
  return o;
}

template <class TS>
struct DeviceBlock {
  TS ts;

  __device__ __forceinline__ int64_t block() const { return blockIdx.x; }

  template <class F>
  __device__ __forceinline__ void each(F&& f) {
    f(static_cast<int>(threadIdx.x), ts);
  }

  template <class F>
  __device__ __forceinline__ void first(F&& f) {
    if (threadIdx.x == 0) f(ts);
  }

  __device__ __forceinline__ void barrier() { __syncthreads(); }

  // Lane l merges lane l + offset's record (shfl_down: lanes past the warp get their
  // own, merged but never used), offsets 16, 8, 4, 2, 1; lane 0 of each warp then holds
  // its warp, and thread 0 merges warps 1..7 into warp 0's in index order.
  template <class Get>
  __device__ __forceinline__ void reduce(Get get) {
    auto& r = get(ts);
    using R = std::remove_reference_t<decltype(r)>;
    __shared__ R per_warp[kWarps];
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      const R other = shfl_down_rec(r, offset);
      rec_merge(r, other);
    }
    const int lane = threadIdx.x % kWarpSize;
    const int warp = threadIdx.x / kWarpSize;
    if (lane == 0) per_warp[warp] = r;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kWarps; ++w) rec_merge(r, per_warp[w]);
    }
    __syncthreads();
  }

  // The barrier orders every thread's writes (records, histogram atomics) before
  // thread 0's fence and ticket; the fence after the atomic is its acquire: the block
  // that draws gridDim.x - 1 is the last, and (then the barrier) sees all other blocks'
  // writes (review F12: the fences belong to the atomic, in thread 0, around it; two
  // fence.sc where libcu++'s acq_rel atomic_ref would do, because <cuda/atomic> refuses
  // to compile with toolkit headers of another version than the compiler's). The
  // ticket itself is cleared by the launch's memset, never here.
  __device__ __forceinline__ bool ticket(unsigned int* t) {
    __shared__ int last;
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      const unsigned int drawn = atomicAdd(t, 1u);
      __threadfence();
      last = drawn == gridDim.x - 1u ? 1 : 0;
    }
    __syncthreads();
    return last != 0;
  }

  template <class T>
  __device__ __forceinline__ static T load(const T* p) {
    return __ldg(p);
  }
  __device__ __forceinline__ static Vec16 load_vec(const Vec16* p) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    Vec16 r;
    r.w[0] = v.x;
    r.w[1] = v.y;
    r.w[2] = v.z;
    r.w[3] = v.w;
    return r;
  }
  // Past L1 (not coherent across SMs): records other blocks of this launch wrote.
  __device__ __forceinline__ static Word load_l2(const Word* p) { return __ldcg(p); }
  __device__ __forceinline__ static void shared_inc(uint32_t* p) { atomicAdd(p, 1u); }
  __device__ __forceinline__ static void atomic_add(int64_t* p, int64_t v) {
    atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
  }
  __device__ __forceinline__ static void note(int32_t) {}
};

}  // namespace cuda
}  // namespace fusedstats
