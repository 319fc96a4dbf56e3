// CUDA entry points (host side). The chunk table and workspaces are device buffers the
// Python side allocated (and caches per tensor list); nothing here allocates or syncs,
// and nothing here switches devices: the caller makes the tensors' device current (in
// Python, with torch.cuda.device, only when it is not already), and every launch goes
// to `stream` of that device. Each function returns a cudaError_t value (0: success).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fusedstats/plan.h"

namespace fusedstats {
namespace cuda {

// Bytes of the workspace of tensor_stats / tensor_records (no initialization needed:
// each launch clears what it must), and of finalize_records.
int64_t workspace_bytes(int64_t n_chunks, int64_t n_tensors, bool extended);
int64_t finalize_workspace_bytes(bool extended);
int64_t chunk_elems();

// memset + chunk pass + finishing pass. has_rows: some tensor has row_len > 0 (picks the
// kernel instance with row code). hist may be null unless extended.
int launch_stats(const void* table, int64_t n_chunks, int64_t n_tensors, bool has_rows,
                 bool extended, void* workspace, double dormant_threshold, double* out,
                 int64_t* hist, uintptr_t stream);
// The same pass into n_tensors mergeable records (Partial, or ExtRecord with extended),
// overwritten or, with accumulate, merged into.
int launch_records(const void* table, int64_t n_chunks, int64_t n_tensors, bool has_rows,
                   bool extended, void* workspace, double dormant_threshold, void* records,
                   bool accumulate, uintptr_t stream);
// Rows of n records (+ the global row); memset + 1 launch.
int launch_finalize(const void* records, int64_t n, bool extended, void* workspace, double* out,
                    int64_t* hist, uintptr_t stream);
// dst[t] = merge of src[s][t] over s in order where include[s * n + t] (include may be
// null); 1 launch.
int launch_merge(const void* src, int64_t n_sources, int64_t n, bool extended,
                 const uint8_t* include, void* dst, uintptr_t stream);

// Loads every kernel of this module for the current device without launching anything;
// returns the error that says whether this machine can run them (e.g.
// cudaErrorInsufficientDriver, cudaErrorNoKernelImageForDevice).
int probe();
std::string error_string(int code);
// Errors that mean "this build cannot run here" (the caller then uses another path).
std::vector<int> unusable_codes();

}  // namespace cuda
}  // namespace fusedstats
