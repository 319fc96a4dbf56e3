// The chunk loop of the CPU kernel. CMake compiles this file twice: with FS_ISA=baseline
// (the wheel's portable flags) and, on x86-64, with FS_ISA=avx2 (-mavx2 -mfma -mf16c);
// tensor_stats_cpu.cpp picks one at run time, once per process. Each copy is
// deterministic at any thread count; the two may differ in the last bit (FMA, lanes).
//
// Vectorization, checked with `objdump -d` and -fopt-info-vec on the GCC 12 -O3 build
// of the avx2 copy (tile_stats_fast<kFloat32>, the loop every 16/32-bit input runs),
// per 8 elements: vmovups; vminps, vmaxps, vcmpeqps + vpsubd (min, max, zero count on
// the 8 floats); vextractf128 + vcvtps2pd x2; vsubpd x2 (d = x - shift); vaddpd x2
// (Σd); vfmadd231pd x2 (Σd²); vandpd + vaddpd x2 (l1). No scalar code in the loop.
// Without `omp simd reduction` GCC left the min/max and the double sums scalar
// (vminsd, vaddsd). Measured in cache on this 2-core AMD EPYC (Zen 3): 14 GB/s of
// float32 per core. float16 (F16C vcvtph2ps) and bfloat16 (vpmovzxwd + vpslld) are
// widened to a float tile first; through the generic load they ran at 0.14 and
// 2.2 GB/s instead of ~5-6. The baseline copy has the same loops in SSE2 registers.
#include <cstdint>

#if defined(__F16C__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#include "cpu_kernels.h"
#include "fusedstats/plan.h"
#include "fusedstats/stats.h"

#ifndef FS_ISA
#error "FS_ISA must name the instruction-set namespace"
#endif

namespace fusedstats {
namespace cpu {
namespace FS_ISA {

constexpr int64_t kTile = kTileElems;

// 16-bit inputs are widened to a float tile first (exact): the stats loop then runs
// the float32 code, which vectorizes fully. Measured on this machine, reading bf16
// through the generic load ran at half the element rate of float32.
static void bf16_to_floats(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_bf16(src[i]);  // vpmovzxwd + vpslld
}

// With F16C: one vcvtph2ps per 8 halves, which the compiler does not emit from the
// portable bit-twiddling load.
static void halves_to_floats(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) dst[i] = load_f16(src[i]);
}

template <int32_t D>
static void span_stats(const typename Elem<D>::T* p, int64_t len, Partial& acc) {
  for (int64_t off = 0; off < len; off += kTile) {
    const int64_t n = len - off < kTile ? len - off : kTile;
    Partial tile;
    if constexpr (D == kFloat16 || D == kBFloat16) {
      alignas(64) float widened[kTile];
      if constexpr (D == kFloat16) {
        halves_to_floats(p + off, n, widened);
      } else {
        bf16_to_floats(p + off, n, widened);
      }
      tile_stats<kFloat32>(widened, n, shift_for(acc), tile);
    } else {
      tile_stats<D>(p + off, n, shift_for(acc), tile);
    }
    partial_merge(acc, tile);
  }
}

template <int32_t D>
static Partial chunk_stats(const Chunk& c, double dormant_threshold) {
  const auto* p = static_cast<const typename Elem<D>::T*>(c.data) + c.start;
  Partial acc = partial_empty();
  if (c.row_len <= 0) {
    span_stats<D>(p, c.len, acc);
    return acc;
  }
  const double row_len = static_cast<double>(c.row_len);
  for (int64_t r = 0; r < c.len; r += c.row_len) {
    Partial row = partial_empty();
    span_stats<D>(p + r, c.row_len, row);
    if (row.l1 / row_len < dormant_threshold) row.n_dormant = 1;
    partial_merge(acc, row);
  }
  return acc;
}

static Partial one_chunk(const Chunk& c, double dormant_threshold) {
  switch (c.dtype) {
    case kFloat32:
      return chunk_stats<kFloat32>(c, dormant_threshold);
    case kFloat64:
      return chunk_stats<kFloat64>(c, dormant_threshold);
    case kFloat16:
      return chunk_stats<kFloat16>(c, dormant_threshold);
    default:
      return chunk_stats<kBFloat16>(c, dormant_threshold);
  }
}

// Clears flush-to-zero and denormals-are-zero for its scope and restores them. They
// are per-thread state (torch.set_flush_denormal sets them on the caller's thread
// only), so without this a subnormal input would count as zero on one thread and not
// on another, and results would depend on the schedule.
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

void chunk_partials(const Chunk* chunks, int64_t n_chunks, double dormant_threshold,
                    Partial* out, int num_threads, bool parallel) {
#pragma omp parallel num_threads(num_threads) if (parallel)
  {
    const ExactDenormals exact;
    // Each chunk writes its own slot, so the schedule cannot change the result;
    // dynamic because the last chunk of each tensor is short.
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_chunks; ++i) out[i] = one_chunk(chunks[i], dormant_threshold);
  }
}

}  // namespace FS_ISA
}  // namespace cpu
}  // namespace fusedstats
