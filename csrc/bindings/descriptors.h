// What the three extension modules (_core, _cuda, _cuda_emu) share at their Python edge:
// tensor descriptors from the lists the Python side passes, and the chunk table of
// those tensors as bytes (the image _cuda copies to the device and _cuda_emu reads).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fusedstats/plan.h"

namespace fusedstats {
namespace bindings {

inline std::vector<TensorDesc> descriptors(const std::vector<uintptr_t>& ptrs,
                                           const std::vector<int64_t>& numels,
                                           const std::vector<int32_t>& dtypes,
                                           const std::vector<int64_t>& row_lens) {
  const size_t n = ptrs.size();
  if (numels.size() != n || dtypes.size() != n || row_lens.size() != n)
    throw pybind11::value_error("ptrs, numels, dtypes and row_lens must have the same length");
  std::vector<TensorDesc> out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = TensorDesc{reinterpret_cast<const void*>(ptrs[i]), numels[i], dtypes[i], row_lens[i]};
  return out;
}

// (table bytes, n_chunks): Chunk[n_chunks] then int64 first_chunk[n_tensors + 1].
inline pybind11::tuple plan_table(const std::vector<uintptr_t>& ptrs,
                                  const std::vector<int64_t>& numels,
                                  const std::vector<int32_t>& dtypes,
                                  const std::vector<int64_t>& row_lens, int64_t chunk_elems) {
  const std::vector<TensorDesc> descs = descriptors(ptrs, numels, dtypes, row_lens);
  const Plan plan = make_plan(descs.data(), static_cast<int64_t>(descs.size()), chunk_elems);
  const size_t chunk_bytes = plan.chunks.size() * sizeof(Chunk);
  const size_t first_bytes = plan.first_chunk.size() * sizeof(int64_t);
  std::string out(chunk_bytes + first_bytes, '\0');
  if (chunk_bytes) std::memcpy(&out[0], plan.chunks.data(), chunk_bytes);
  std::memcpy(&out[chunk_bytes], plan.first_chunk.data(), first_bytes);
  return pybind11::make_tuple(pybind11::bytes(out), static_cast<int64_t>(plan.chunks.size()));
}

}  // namespace bindings
}  // namespace fusedstats
