// One logged scalar (a one-element tensor) widened exactly to float64, written once for
// host and device: the MetricsLogger's gather of logged tensor values. The CPU core
// reads host pointers with it (fusedstats._core.gather_scalars), the CUDA gather kernel
// (csrc/cuda/gather.cu) device pointers, one thread per value; the CPU tests of the
// first therefore test the arithmetic of the second.
//
// Callers pass only pointers to a whole element inside a live allocation (Python checks
// each tensor: dense, one element, its storage holding it; fusedstats/logger/gather.py).
#pragma once

#include <cstdint>

#include "fusedstats/stats.h"

namespace fusedstats {

// Element types of a logged scalar. The first four are the tensor-stats DType codes.
enum ScalarType : int32_t {
  kScalarFloat32 = kFloat32,
  kScalarFloat64 = kFloat64,
  kScalarFloat16 = kFloat16,
  kScalarBFloat16 = kBFloat16,
  kScalarInt8 = 4,
  kScalarUInt8 = 5,
  kScalarInt16 = 6,
  kScalarInt32 = 7,
  kScalarInt64 = 8,
  kScalarBool = 9,
};

// One entry of the gather table: 16 bytes, so that a device table is read with one
// aligned load per thread.
struct ScalarRef {
  const void* data;
  int64_t type;  // ScalarType
};

// Every value exactly: float32/16/bfloat16 widen exactly, and so do ints of at most
// 2**53; int64 beyond that rounds to nearest even, as torch's .to(torch.float64) does.
FS_FN double load_scalar(const void* data, int64_t type) {
  switch (type) {
    case kScalarFloat32:
      return static_cast<double>(*static_cast<const float*>(data));
    case kScalarFloat64:
      return *static_cast<const double*>(data);
    case kScalarFloat16:
      return static_cast<double>(load_f16(*static_cast<const uint16_t*>(data)));
    case kScalarBFloat16:
      return static_cast<double>(load_bf16(*static_cast<const uint16_t*>(data)));
    case kScalarInt8:
      return static_cast<double>(*static_cast<const int8_t*>(data));
    case kScalarUInt8:
      return static_cast<double>(*static_cast<const uint8_t*>(data));
    case kScalarInt16:
      return static_cast<double>(*static_cast<const int16_t*>(data));
    case kScalarInt32:
      return static_cast<double>(*static_cast<const int32_t*>(data));
    case kScalarInt64:
      return static_cast<double>(*static_cast<const int64_t*>(data));
    case kScalarBool:
      return *static_cast<const uint8_t*>(data) != 0 ? 1.0 : 0.0;
    default:
      return NAN;  // never passed (Python maps only the types above)
  }
}

// The host gather: out[i] = table[i]'s value.
inline void gather_scalars(const ScalarRef* table, int64_t n, double* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = load_scalar(table[i].data, table[i].type);
}

}  // namespace fusedstats
