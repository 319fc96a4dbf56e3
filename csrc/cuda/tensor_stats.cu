// CUDA tensor statistics: the same per-element and merge math as the CPU
// (fusedstats/stats.h); this file adds only indexing, loads and launches.
//
// Launch 1 (chunk_kernel): one block per chunk of the table, any mix of tensors and
//   dtypes in one launch. Each thread widens one 16-byte load into doubles, takes
//   the tile's two-pass moments in registers and Chan-merges them into its own
//   Partial; the block then merges its threads in a fixed tree -> chunk partial.
// Launch 2 (finish_kernel): one block per tensor merges that tensor's chunk partials
//   (fixed order) and writes its row; the last block to finish (atomic ticket) merges
//   all tensors in index order into the global row and re-arms the ticket, so the
//   pair replays inside a CUDA graph. No host sync, no allocation.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_kernels.h"
#include "fusedstats/plan.h"
#include "fusedstats/stats.h"

namespace fusedstats {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kLoadBytes = 16;
constexpr int kUnroll = 4;
constexpr int kMinBlocksPerSm = 2;

__device__ __forceinline__ Partial shfl_down(const Partial& p, int offset) {
  constexpr unsigned kAll = 0xffffffffu;
  Partial o;
  o.numel = __shfl_down_sync(kAll, p.numel, offset);
  o.n_nan = __shfl_down_sync(kAll, p.n_nan, offset);
  o.n_inf = __shfl_down_sync(kAll, p.n_inf, offset);
  o.n_zero = __shfl_down_sync(kAll, p.n_zero, offset);
  o.n_finite = __shfl_down_sync(kAll, p.n_finite, offset);
  o.n_dormant = __shfl_down_sync(kAll, p.n_dormant, offset);
  o.sum = __shfl_down_sync(kAll, p.sum, offset);
  o.l1 = __shfl_down_sync(kAll, p.l1, offset);
  o.sumsq = __shfl_down_sync(kAll, p.sumsq, offset);
  o.shift = __shfl_down_sync(kAll, p.shift, offset);
  o.mean = __shfl_down_sync(kAll, p.mean, offset);
  o.m2 = __shfl_down_sync(kAll, p.m2, offset);
  o.min = __shfl_down_sync(kAll, p.min, offset);
  o.max = __shfl_down_sync(kAll, p.max, offset);
  return o;
}

// Fixed shuffle tree: lane 0 ends with lanes 0..31 merged in the same order every run.
__device__ __forceinline__ void warp_merge(Partial& p) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const Partial other = shfl_down(p, offset);
    partial_merge(p, other);
  }
}

// Thread 0 returns with the whole block merged (warps in index order).
__device__ __forceinline__ void block_merge(Partial& p) {
  __shared__ Partial per_warp[kWarps];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  warp_merge(p);
  if (lane == 0) per_warp[warp] = p;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w) partial_merge(p, per_warp[w]);
  }
  __syncthreads();
}

template <int32_t D>
__device__ __forceinline__ void add_scalar(const typename Elem<D>::T* p, int64_t i, Partial& acc) {
  Partial t;
  tile_stats<D, false>(p + i, 1, shift_for(acc), t, nullptr, nullptr);
  partial_merge(acc, t);
}

// A span of elements split across the block: a scalar head up to 16-byte alignment,
// a body of 16-byte loads (one tile per load), a scalar tail.
template <int32_t D>
__device__ void span_stats(const typename Elem<D>::T* p, int64_t len, Partial& acc) {
  using T = typename Elem<D>::T;
  constexpr int kVec = kLoadBytes / static_cast<int>(sizeof(T));
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  int64_t head = static_cast<int64_t>(((kLoadBytes - (addr % kLoadBytes)) % kLoadBytes) / sizeof(T));
  if (head > len) head = len;
  for (int64_t i = threadIdx.x; i < head; i += kThreads) add_scalar<D>(p, i, acc);
  const T* body = p + head;
  const int64_t n_vec = (len - head) / kVec;
  const uint4* vec = reinterpret_cast<const uint4*>(body);
  // kUnroll loads in flight per thread before any arithmetic: the register budget
  // allows two blocks per SM, and this keeps enough bytes in flight to cover latency.
  for (int64_t base = threadIdx.x; base < n_vec; base += int64_t{kThreads} * kUnroll) {
    uint4 raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t{u} * kThreads;
      raw[u] = i < n_vec ? __ldg(vec + i) : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (base + int64_t{u} * kThreads < n_vec) {
        T vals[kVec];
        memcpy(vals, &raw[u], sizeof raw[u]);
        Partial t;
        tile_stats<D, false>(vals, kVec, shift_for(acc), t, nullptr, nullptr);
        partial_merge(acc, t);
      }
    }
  }
  for (int64_t i = head + n_vec * kVec + threadIdx.x; i < len; i += kThreads) add_scalar<D>(p, i, acc);
}

// Row mode (2-D weights): one warp per row, so a row's mean |w| is known to one lane.
template <int32_t D>
__device__ void rows_stats(const typename Elem<D>::T* p, int64_t len, int64_t row_len,
                           double dormant_threshold, Partial& acc) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int64_t n_rows = len / row_len;
  for (int64_t r = warp; r < n_rows; r += kWarps) {
    Partial row = partial_empty();
    const auto* rp = p + r * row_len;
    for (int64_t i = lane; i < row_len; i += kWarpSize) add_scalar<D>(rp, i, row);
    warp_merge(row);
    if (lane == 0) {
      if (row.l1 / static_cast<double>(row_len) < dormant_threshold) row.n_dormant = 1;
      partial_merge(acc, row);
    }
  }
}

template <int32_t D, bool kRows>
__device__ void chunk_stats(const Chunk& c, double dormant_threshold, Partial& acc) {
  const auto* p = static_cast<const typename Elem<D>::T*>(c.data) + c.start;
  if (kRows && c.row_len > 0) {
    rows_stats<D>(p, c.len, c.row_len, dormant_threshold, acc);
  } else {
    span_stats<D>(p, c.len, acc);
  }
}

// kRows: some tensor counts dormant rows (weight_stats). The plain instance, which
// grad_stats and tensor_stats use, carries no row code and so needs fewer registers.
template <bool kRows>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    chunk_kernel(const Chunk* __restrict__ chunks, double dormant_threshold,
                 Partial* __restrict__ chunk_partials) {
  const Chunk c = chunks[blockIdx.x];
  Partial acc = partial_empty();
  switch (c.dtype) {
    case kFloat32:
      chunk_stats<kFloat32, kRows>(c, dormant_threshold, acc);
      break;
    case kFloat64:
      chunk_stats<kFloat64, kRows>(c, dormant_threshold, acc);
      break;
    case kFloat16:
      chunk_stats<kFloat16, kRows>(c, dormant_threshold, acc);
      break;
    default:
      chunk_stats<kBFloat16, kRows>(c, dormant_threshold, acc);
      break;
  }
  block_merge(acc);
  if (threadIdx.x == 0) chunk_partials[blockIdx.x] = acc;
}

// Reads another block's result past L1 (which is not coherent across SMs).
__device__ __forceinline__ Partial load_partial_l2(const Partial* src) {
  Partial p;
  const long long* s64 = reinterpret_cast<const long long*>(src);
  long long* d64 = reinterpret_cast<long long*>(&p);
  constexpr int kWords = static_cast<int>(sizeof(Partial) / sizeof(long long));
  static_assert(sizeof(Partial) % sizeof(long long) == 0, "Partial must be 8-byte words");
#pragma unroll
  for (int i = 0; i < kWords; ++i) d64[i] = __ldcg(s64 + i);
  return p;
}

__global__ void __launch_bounds__(kThreads)
    finish_kernel(const int64_t* __restrict__ first_chunk, int64_t n_tensors,
                  const Partial* __restrict__ chunk_partials, Partial* tensor_partials,
                  unsigned int* ticket, double* __restrict__ out) {
  const int64_t t = blockIdx.x;
  if (t < n_tensors) {
    Partial acc = partial_empty();
    for (int64_t c = first_chunk[t] + threadIdx.x; c < first_chunk[t + 1]; c += kThreads)
      partial_merge(acc, load_partial_l2(chunk_partials + c));
    block_merge(acc);
    if (threadIdx.x == 0) {
      tensor_partials[t] = acc;
      partial_finalize(acc, out + t * kNumColumns);
    }
  }
  __shared__ bool is_last;
  if (threadIdx.x == 0) {
    __threadfence();  // this block's tensor partial is visible before its ticket
    is_last = atomicAdd(ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  Partial global = partial_empty();
  for (int64_t i = threadIdx.x; i < n_tensors; i += kThreads)
    partial_merge(global, load_partial_l2(tensor_partials + i));
  block_merge(global);
  if (threadIdx.x == 0) {
    partial_finalize(global, out + n_tensors * kNumColumns);
    *ticket = 0u;  // re-armed for the next call or graph replay
  }
}

int64_t align_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

}  // namespace

namespace {
std::string launch_on_current(const void* table, int64_t n_chunks, int64_t n_tensors,
                              bool has_rows, void* workspace, double dormant_threshold,
                              double* out, uintptr_t stream);
}  // namespace

std::vector<uint8_t> table_bytes(const Plan& plan) {
  const size_t chunk_bytes = plan.chunks.size() * sizeof(Chunk);
  const size_t first_bytes = plan.first_chunk.size() * sizeof(int64_t);
  std::vector<uint8_t> out(chunk_bytes + first_bytes);
  if (chunk_bytes) std::memcpy(out.data(), plan.chunks.data(), chunk_bytes);
  std::memcpy(out.data() + chunk_bytes, plan.first_chunk.data(), first_bytes);
  return out;
}

int64_t workspace_bytes(int64_t n_chunks, int64_t n_tensors) {
  return align_up((n_chunks + n_tensors) * static_cast<int64_t>(sizeof(Partial)), 16) + 16;
}

std::string launch(int device, const void* table, int64_t n_chunks, int64_t n_tensors,
                   bool has_rows, void* workspace, double dormant_threshold, double* out,
                   uintptr_t stream) {
  // Switch to the tensors' device for the launch and back afterwards: the current
  // device is per-thread state that torch's runtime shares with this one.
  int previous = -1;
  cudaError_t err = cudaGetDevice(&previous);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  if (previous != device) {
    err = cudaSetDevice(device);
    if (err != cudaSuccess) return cudaGetErrorString(err);
  }
  const std::string result = launch_on_current(table, n_chunks, n_tensors, has_rows, workspace,
                                               dormant_threshold, out, stream);
  if (previous != device) cudaSetDevice(previous);
  return result;
}

namespace {

std::string launch_on_current(const void* table, int64_t n_chunks, int64_t n_tensors,
                              bool has_rows, void* workspace, double dormant_threshold,
                              double* out, uintptr_t stream) {
  cudaError_t err = cudaSuccess;
  auto* s = reinterpret_cast<cudaStream_t>(stream);
  const auto* chunks = static_cast<const Chunk*>(table);
  const auto* first_chunk = reinterpret_cast<const int64_t*>(static_cast<const uint8_t*>(table) +
                                                             n_chunks * sizeof(Chunk));
  auto* chunk_partials = static_cast<Partial*>(workspace);
  Partial* tensor_partials = chunk_partials + n_chunks;
  auto* ticket = reinterpret_cast<unsigned int*>(
      static_cast<uint8_t*>(workspace) +
      align_up((n_chunks + n_tensors) * static_cast<int64_t>(sizeof(Partial)), 16));
  if (n_chunks > 0) {
    const auto kernel = has_rows ? chunk_kernel<true> : chunk_kernel<false>;
    kernel<<<static_cast<unsigned>(n_chunks), kThreads, 0, s>>>(chunks, dormant_threshold,
                                                                chunk_partials);
    err = cudaGetLastError();
    if (err != cudaSuccess) return cudaGetErrorString(err);
  }
  const unsigned blocks = static_cast<unsigned>(n_tensors > 0 ? n_tensors : 1);
  finish_kernel<<<blocks, kThreads, 0, s>>>(first_chunk, n_tensors, chunk_partials,
                                            tensor_partials, ticket, out);
  err = cudaGetLastError();
  if (err != cudaSuccess) return cudaGetErrorString(err);
  return std::string();
}

}  // namespace

}  // namespace cuda
}  // namespace fusedstats
