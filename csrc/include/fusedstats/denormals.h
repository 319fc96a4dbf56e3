// ExactDenormals: clears flush-to-zero and denormals-are-zero for its scope and
// restores them (host code only). They are per-thread state (torch.set_flush_denormal
// sets them on the caller's thread only), so without this a subnormal input would count
// as zero on one thread and not on another, results would depend on the schedule, and
// the host emulation of the CUDA kernels (the device never flushes: no -ftz) would not
// match the device.
#pragma once

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace fusedstats {

class ExactDenormals {
 public:
  ExactDenormals() {
#if defined(__SSE2__)
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ & ~kFtzDaz);
#endif
  }
  ~ExactDenormals() {
#if defined(__SSE2__)
    _mm_setcsr(saved_);
#endif
  }
  ExactDenormals(const ExactDenormals&) = delete;
  ExactDenormals& operator=(const ExactDenormals&) = delete;

 private:
  static constexpr unsigned kFtzDaz = 0x8040u;  // MXCSR bits 15 (FTZ) and 6 (DAZ)
  unsigned saved_ = 0;
};

}  // namespace fusedstats
