// The chunk loop of the CPU kernel. CMake compiles this file twice: with FS_ISA=baseline
// (the wheel's portable flags) and, on x86-64, with FS_ISA=avx2 (-mavx2 -mfma -mf16c);
// tensor_stats_cpu.cpp picks one at run time. Both use -ffp-contract=off and the same
// fixed lane count, so they return the same bits.
//
// Vectorization, checked with `objdump -d` on the GCC 12 -O3 build of the avx2 copy:
//  - tile_stats_fast's first loop is straight-line ymm code: vaddpd (sum, l1, zeros),
//    vandpd (|x|), vcmpeqpd + vandpd (zero count), vminpd/vmaxpd (min, max), two ymm
//    registers per accumulator; no scalar code in the loop body.
//  - its second loop is vsubpd + vmulpd + vaddpd.
//  - the widening loops: vcvtps2pd (float32), vpmovzxwd + vpslld + vcvtps2pd (bfloat16),
//    vcvtph2ps + vcvtps2pd (float16, F16C).
// The baseline copy has the same loops in xmm registers (SSE2).
#include <cstdint>

#include "cpu_kernels.h"
#include "fusedstats/plan.h"
#include "fusedstats/stats.h"

#ifndef FS_ISA
#error "FS_ISA must name the instruction-set namespace"
#endif

namespace fusedstats {
namespace cpu {
namespace FS_ISA {

// 1024 doubles = 8 KiB: a tile and its widened copy stay in L1 for the second sweep.
constexpr int64_t kTile = 1024;

template <int32_t D>
static void span_stats(const typename Elem<D>::T* p, int64_t len, Partial& acc) {
  alignas(64) double buf[kTile];
  for (int64_t off = 0; off < len; off += kTile) {
    const int64_t n = len - off < kTile ? len - off : kTile;
    const double* v;
    if constexpr (D == kFloat64) {
      v = p + off;
    } else {
      const typename Elem<D>::T* src = p + off;
      for (int64_t i = 0; i < n; ++i) buf[i] = Elem<D>::load(src[i]);
      v = buf;
    }
    Partial tile;
    tile_stats(v, n, tile);
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
