// The gather of logged scalars on the GPU: thread i reads table[i]'s element and writes
// it widened to float64 (fusedstats/scalars.h, the same code the CPU core runs). One
// launch for any number of values and any mix of element types; the caller then copies
// the float64 buffer to the host once.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "fusedstats/scalars.h"
#include "gather.h"

namespace fusedstats {
namespace cuda {

namespace {

// 256 threads a block: a gather of 10,000 values is 40 blocks, one wave on any GPU.
constexpr int kGatherThreads = 256;

__global__ void gather_kernel(const ScalarRef* __restrict__ table, int64_t n,
                              double* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kGatherThreads + threadIdx.x;
  if (i < n) out[i] = load_scalar(table[i].data, table[i].type);
}

}  // namespace

std::string gather_launch(const void* table, int64_t n, double* out, uintptr_t stream) {
  if (n <= 0) return "";
  const int64_t blocks = (n + kGatherThreads - 1) / kGatherThreads;
  if (blocks > 0x7fffffff) return "too many values for one gather launch";
  gather_kernel<<<static_cast<unsigned>(blocks), kGatherThreads, 0,
                  reinterpret_cast<cudaStream_t>(stream)>>>(
      static_cast<const ScalarRef*>(table), n, out);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : cudaGetErrorString(err);
}

}  // namespace cuda
}  // namespace fusedstats
