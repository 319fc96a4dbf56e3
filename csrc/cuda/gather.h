// The MetricsLogger's gather of logged scalar tensors on a GPU (host side): one kernel
// over a device table of (pointer, ScalarType) writes every value as float64 into a
// device buffer, on the caller's stream, with no host sync and no allocation (the
// caller owns the table and the output: capturable in a CUDA graph).
#pragma once

#include <cstdint>
#include <string>

namespace fusedstats {
namespace cuda {

// One launch of the gather kernel on `stream` (of the current device: the caller makes
// the device of its tensors current); returns an empty string or the CUDA error text.
// table: n ScalarRef entries in device memory; out: n doubles in device memory.
std::string gather_launch(const void* table, int64_t n, double* out, uintptr_t stream);

}  // namespace cuda
}  // namespace fusedstats
