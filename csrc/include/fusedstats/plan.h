// The chunk table: every tensor cut into fixed-size pieces, the unit of parallel work
// on CPU (one OpenMP iteration) and GPU (one thread block). Chunk boundaries depend
// only on the tensor sizes, never on the thread count, and partial results are merged
// in table order, which is what makes the output bit-identical at any thread count.
#pragma once

#include <cstdint>
#include <vector>

namespace fusedstats {

struct TensorDesc {
  const void* data;
  int64_t numel;
  int32_t dtype;    // DType
  int64_t row_len;  // > 0: count dormant rows of this length (2-D weights); 0: off
};

struct Chunk {
  const void* data;  // start of the tensor (not of the chunk)
  int64_t start;     // first element of the chunk, 64-bit: tensors may exceed 2^31
  int64_t len;
  int64_t row_len;
  int32_t tensor;
  int32_t dtype;
};

struct Plan {
  std::vector<Chunk> chunks;
  std::vector<int64_t> first_chunk;  // tensor t owns chunks [first_chunk[t], first_chunk[t+1])
};

// In row mode a chunk holds whole rows, so that each row's mean |w| is seen by one worker.
inline Plan make_plan(const TensorDesc* tensors, int64_t n_tensors, int64_t chunk_elems) {
  Plan plan;
  plan.first_chunk.reserve(static_cast<size_t>(n_tensors) + 1);
  for (int64_t t = 0; t < n_tensors; ++t) {
    const TensorDesc& d = tensors[t];
    plan.first_chunk.push_back(static_cast<int64_t>(plan.chunks.size()));
    int64_t step = chunk_elems;
    if (d.row_len > 0) {
      const int64_t rows = chunk_elems / d.row_len;
      step = (rows > 0 ? rows : 1) * d.row_len;
    }
    for (int64_t start = 0; start < d.numel; start += step) {
      const int64_t left = d.numel - start;
      plan.chunks.push_back(Chunk{d.data, start, left < step ? left : step, d.row_len,
                                  static_cast<int32_t>(t), d.dtype});
    }
  }
  plan.first_chunk.push_back(static_cast<int64_t>(plan.chunks.size()));
  return plan;
}

}  // namespace fusedstats
