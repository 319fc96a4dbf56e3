// CUDA entry points (host side). The chunk table and workspace are device buffers the
// Python side allocated and caches per tensor list; nothing here allocates or syncs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fusedstats/plan.h"

namespace fusedstats {
namespace cuda {

// Elements per thread block. float32: 128 KiB, 32 16-byte loads per thread.
constexpr int64_t kChunkElems = int64_t{1} << 15;

// Host image of the device table: Chunk[n_chunks] then int64 first_chunk[n_tensors + 1].
std::vector<uint8_t> table_bytes(const Plan& plan);
int64_t workspace_bytes(int64_t n_chunks, int64_t n_tensors);

// Two launches on `stream` (the chunk pass, then the per-tensor and global merge);
// returns an empty string or the CUDA error text.
// has_rows: some tensor has row_len > 0 (picks the kernel instance with row code).
std::string launch(int device, const void* table, int64_t n_chunks, int64_t n_tensors,
                   bool has_rows, void* workspace, double dormant_threshold, double* out,
                   uintptr_t stream);

}  // namespace cuda
}  // namespace fusedstats
