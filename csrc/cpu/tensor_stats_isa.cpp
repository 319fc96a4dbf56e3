// The chunk loop of the CPU kernel. CMake compiles this file twice: with FS_ISA=baseline
// (the wheel's portable flags) and, on x86-64, with FS_ISA=avx2 (-mavx2 -mfma -mf16c);
// tensor_stats_cpu.cpp picks one at run time. Both use -ffp-contract=off and the same
// fixed lane count, so they return the same bits.
//
// Vectorization, checked with `objdump -d` and -fopt-info-vec on the GCC 12 -O3 build
// of the avx2 copy (tile_stats_fast<kFloat32>, the loop every 16/32-bit input runs):
//   vmovups (8 floats) -> vcvtps2pd x2 -> vaddpd x2 (sum), vandpd + vaddpd x2 (l1);
//   vcmpeqps + vpsubd (zero count), vminps, vmaxps: 14 instructions per 8 elements,
//   no scalar code in the loop; the second sweep is vcvtps2pd, vsubpd, vmulpd, vaddpd.
// Without `omp simd reduction` GCC left the min/max and double sums scalar (vminsd,
// vaddsd). Measured in-cache on this 2-core AMD EPYC: 11 GB/s of float32 per core.
// float16 (F16C vcvtph2ps) and bfloat16 (vpmovzxwd + vpslld) are widened to a float
// tile first; through the generic load they ran at 0.14 and 2.2 GB/s instead of ~5.
// The baseline copy has the same loops in SSE2 xmm registers (about 3 GB/s).
#include <cstdint>

#if defined(__F16C__)
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

// 1024 elements (at most 8 KiB): a tile stays in L1 for its second sweep.
constexpr int64_t kTile = 1024;

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

void chunk_partials(const Chunk* chunks, int64_t n_chunks, double dormant_threshold,
                    Partial* out, int num_threads, bool parallel) {
  // Each chunk writes its own slot, so the schedule cannot change the result;
  // dynamic because the last chunk of each tensor is short.
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads) if (parallel)
  for (int64_t i = 0; i < n_chunks; ++i) out[i] = one_chunk(chunks[i], dormant_threshold);
}

}  // namespace FS_ISA
}  // namespace cpu
}  // namespace fusedstats
