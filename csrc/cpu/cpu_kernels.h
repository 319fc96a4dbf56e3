// CPU entry points. The chunk loop is compiled once per instruction set
// (tensor_stats_isa.cpp built as fusedstats::cpu::baseline and ::avx2); everything
// else (planning, merging, finalizing) is compiled once in tensor_stats_cpu.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fusedstats/plan.h"
#include "fusedstats/stats.h"

namespace fusedstats {
namespace cpu {

#define FS_DECLARE_ISA(ns)                                                                  \
  namespace ns {                                                                            \
  void chunk_partials(const Chunk* chunks, int64_t n_chunks, double dormant_threshold,      \
                      Partial* out, int num_threads, bool parallel);                        \
  }
FS_DECLARE_ISA(baseline)
#if defined(FUSEDSTATS_HAVE_AVX2)
FS_DECLARE_ISA(avx2)
#endif
#undef FS_DECLARE_ISA

// out: (n_tensors + 1) rows of kNumColumns doubles; the last row is the global one.
void tensor_stats(const TensorDesc* tensors, int64_t n_tensors, double dormant_threshold,
                  double* out);

void set_num_threads(int n);  // n >= 1
int get_num_threads();
bool openmp_enabled();

std::vector<std::string> simd_levels();  // available on this CPU, best first
std::string simd_level();                // in use
bool set_simd_level(const std::string& name);  // false if not available here

// Elements per tile: one tile's stats are taken in one sweep while it sits in L1.
// 2048 elements (at most 16 KiB): measured against 1024, 5-10% faster in cache (the
// per-tile merge is amortized), and a second sweep, when needed, still hits L1.
constexpr int64_t kTileElems = 2048;
// Elements per chunk (float32: 256 KiB, about one core's share of L2).
constexpr int64_t kChunkElems = int64_t{1} << 16;
// Below this many elements in all, one thread: waking the team costs more than the work.
constexpr int64_t kParallelMinElems = int64_t{1} << 17;

}  // namespace cpu
}  // namespace fusedstats
