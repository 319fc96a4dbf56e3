// CUDA tensor statistics: the kernels of kernel_body.h instantiated for the GPU, and the
// launch sequences on the caller's stream. The arithmetic is stats.h/span.h, the kernel
// logic kernel_body.h (also compiled for the host emulation); this file adds only the
// __global__ entry points and the runtime calls.
//
// Registers per thread, no spills anywhere (nvcc 13.0.88 -O3 --fmad=false -Xptxas -v,
// 2026-12-06; the first version spilled 344-388 B in row mode, review F9):
//   kernel                      sm_75  sm_80  sm_90  sm_100  sm_120  smem (B)
//   chunk_kernel<plain>           85     84     84     96      86      896
//   chunk_kernel<rows>            89     88     88    101      90     2952
//   chunk_kernel<extended>       126    124    124    122     122    12352
//   chunk_kernel<rows, extended> 130    130    130    130     128    12352
//   finish_kernel   plain / ext  94/128 92/128 94/128 94/128  84/128  900 / 1348
//   finalize_kernel plain / ext  90/128 89/128 90/128 88/126  82/126  900 / 1348
//   merge_kernel    plain / ext  78/115 78/114 74/115 80/111  78/113     0
// So the plain and row passes run 2 blocks of 256 per SM (16 warps), the extended one 2
// (1 with rows, at 130 registers).
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_kernels.h"
#include "exec_device.cuh"
#include "fusedstats/plan.h"
#include "fusedstats/stats.h"
#include "kernel_body.h"

namespace fusedstats {
namespace cuda {

namespace {

// Blocks of 256 threads per SM at least. The plain pass: 2 (<= 128 registers a thread):
// 16 warps with kUnroll 16-byte loads each in flight, >= 32 KiB per SM; at 3 blocks
// (<= 80 registers) it spilled 144-240 bytes on every arch. The extended pass (opt-in)
// merges 21-word records in its shuffle tree and spilled at 128 registers on sm_75-90:
// it gets 1 (<= 255). Not yet tuned on a GPU.
template <bool kRows, bool kExt>
constexpr int kMinBlocksPerSm = kExt ? 1 : 2;

template <bool kRows, bool kExt>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm<kRows, kExt>) chunk_kernel(ChunkArgs a) {
  __shared__ ChunkShared<kExt> sh;
  DeviceBlock<ChunkThread<kExt>> blk;
  chunk_block<kRows, kExt>(blk, a, sh);
}

template <bool kExt>
__global__ void __launch_bounds__(kThreads) finish_kernel(FinishArgs a) {
  DeviceBlock<RecThread<kExt>> blk;
  finish_block<kExt>(blk, a);
}

template <bool kExt>
__global__ void __launch_bounds__(kThreads) finalize_kernel(FinalizeArgs a) {
  DeviceBlock<RecThread<kExt>> blk;
  finalize_block<kExt>(blk, a);
}

template <bool kExt>
__global__ void __launch_bounds__(kThreads) merge_kernel(MergeArgs a) {
  DeviceBlock<RecThread<kExt>> blk;
  merge_block<kExt>(blk, a);
}

// The launcher of kernel_body.h's sequences: the CUDA runtime on one stream.
struct StreamLauncher {
  static constexpr int kInvalidValue = cudaErrorInvalidValue;
  cudaStream_t s;

  int memset(void* p, int64_t bytes) {
    return static_cast<int>(cudaMemsetAsync(p, 0, static_cast<size_t>(bytes), s));
  }
  template <bool kRows, bool kExt>
  int chunk(int64_t grid, const ChunkArgs& a) {
    chunk_kernel<kRows, kExt><<<static_cast<unsigned>(grid), kThreads, 0, s>>>(a);
    return static_cast<int>(cudaGetLastError());
  }
  template <bool kExt>
  int finish(int64_t grid, const FinishArgs& a) {
    finish_kernel<kExt><<<static_cast<unsigned>(grid), kThreads, 0, s>>>(a);
    return static_cast<int>(cudaGetLastError());
  }
  template <bool kExt>
  int finalize(int64_t grid, const FinalizeArgs& a) {
    finalize_kernel<kExt><<<static_cast<unsigned>(grid), kThreads, 0, s>>>(a);
    return static_cast<int>(cudaGetLastError());
  }
  template <bool kExt>
  int merge(int64_t grid, const MergeArgs& a) {
    merge_kernel<kExt><<<static_cast<unsigned>(grid), kThreads, 0, s>>>(a);
    return static_cast<int>(cudaGetLastError());
  }
};

StreamLauncher on(uintptr_t stream) { return StreamLauncher{reinterpret_cast<cudaStream_t>(stream)}; }

template <class K>
int attributes(K kernel) {
  cudaFuncAttributes attr;
  return static_cast<int>(cudaFuncGetAttributes(&attr, kernel));
}

}  // namespace

int64_t workspace_bytes(int64_t n_chunks, int64_t n_tensors, bool extended) {
  return workspace_layout(n_chunks, n_tensors, extended).total;
}

int64_t finalize_workspace_bytes(bool extended) { return finalize_workspace_size(extended); }

int64_t chunk_elems() { return kChunkElems; }

int launch_stats(const void* table, int64_t n_chunks, int64_t n_tensors, bool has_rows,
                 bool extended, void* workspace, double dormant_threshold, double* out,
                 int64_t* hist, uintptr_t stream) {
  StreamLauncher l = on(stream);
  return run_tensor_pass(l, static_cast<const uint8_t*>(table), n_chunks, n_tensors, has_rows,
                         extended, static_cast<uint8_t*>(workspace), dormant_threshold, kModeStats,
                         out, hist, nullptr);
}

int launch_records(const void* table, int64_t n_chunks, int64_t n_tensors, bool has_rows,
                   bool extended, void* workspace, double dormant_threshold, void* records,
                   bool accumulate, uintptr_t stream) {
  StreamLauncher l = on(stream);
  return run_tensor_pass(l, static_cast<const uint8_t*>(table), n_chunks, n_tensors, has_rows,
                         extended, static_cast<uint8_t*>(workspace), dormant_threshold,
                         accumulate ? kModeAccumulate : kModeRecords, nullptr, nullptr,
                         static_cast<uint8_t*>(records));
}

int launch_finalize(const void* records, int64_t n, bool extended, void* workspace, double* out,
                    int64_t* hist, uintptr_t stream) {
  StreamLauncher l = on(stream);
  return run_finalize(l, static_cast<const uint8_t*>(records), n, extended,
                      static_cast<uint8_t*>(workspace), out, hist);
}

int launch_merge(const void* src, int64_t n_sources, int64_t n, bool extended,
                 const uint8_t* include, void* dst, uintptr_t stream) {
  StreamLauncher l = on(stream);
  return run_merge(l, static_cast<const uint8_t*>(src), n_sources, n, extended, include,
                   static_cast<uint8_t*>(dst));
}

int probe() {
  const int errors[] = {
      attributes(chunk_kernel<false, false>), attributes(chunk_kernel<true, false>),
      attributes(chunk_kernel<false, true>),  attributes(chunk_kernel<true, true>),
      attributes(finish_kernel<false>),       attributes(finish_kernel<true>),
      attributes(finalize_kernel<false>),     attributes(finalize_kernel<true>),
      attributes(merge_kernel<false>),        attributes(merge_kernel<true>),
  };
  for (const int e : errors)
    if (e != 0) return e;
  return 0;
}

std::string error_string(int code) {
  const auto e = static_cast<cudaError_t>(code);
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

std::vector<int> unusable_codes() {
  return {cudaErrorInsufficientDriver,       cudaErrorNoDevice,
          cudaErrorNoKernelImageForDevice,   cudaErrorUnsupportedPtxVersion,
          cudaErrorInvalidKernelImage,       cudaErrorSystemDriverMismatch,
          cudaErrorCompatNotSupportedOnDevice, cudaErrorDevicesUnavailable,
          cudaErrorCallRequiresNewerDriver};
}

}  // namespace cuda
}  // namespace fusedstats
