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
  void chunk_records(const Chunk* chunks, int64_t n_chunks, double dormant_threshold,       \
                     ExtRecord* out, int num_threads, bool parallel);                       \
  void unit_abs_sums(const void* data, int32_t dtype, int64_t before, int64_t units,        \
                     int64_t after, double* acc, int num_threads, bool parallel);           \
  }
FS_DECLARE_ISA(baseline)
#if defined(FUSEDSTATS_HAVE_AVX2)
FS_DECLARE_ISA(avx2)
#endif
#undef FS_DECLARE_ISA

// Bytes of one tensor's record: a Partial, or with `extended` an ExtRecord.
int64_t record_bytes(bool extended);

// Per-tensor records of `tensors` into `records` (n_tensors records). With
// `accumulate` each is merged into what `records[t]` already holds (statistics of a
// module's outputs over several calls); otherwise overwritten.
void tensor_records(const TensorDesc* tensors, int64_t n_tensors, double dormant_threshold,
                    bool extended, void* records, bool accumulate);

// Rows of n records (n + 1 rows of kNumColumns, or kNumExtColumns with `extended`,
// doubles; the last row merges all records in index order). hist: with `extended`,
// (n + 1) x kHistBins int64 counts; ignored otherwise.
void finalize_records(const void* records, int64_t n, bool extended, double* rows, int64_t* hist);

// dst[t] = merge over sources s = 0..n_sources-1, in that order, of src[s][t], skipping
// those with include[s * n + t] == 0 (include may be null: all). src holds n_sources
// blocks of n records (e.g. the records of every rank, gathered).
void merge_records(const void* src, int64_t n_sources, int64_t n, bool extended,
                   const uint8_t* include, void* dst);

// ReDo's per-unit sums: acc[u] += Σ over b, a of |x[b, u, a]| for the contiguous
// buffer x (dtype a DType code) viewed as [before, units, after]; acc holds `units`
// doubles. Every element is widened to double; each acc[u] is summed in one fixed
// order, so the bits are the same at any thread count. dtype must be a valid code.
void unit_abs_sums(const void* data, int32_t dtype, int64_t before, int64_t units, int64_t after,
                   double* acc);

// tensor_records + finalize_records.
void tensor_stats(const TensorDesc* tensors, int64_t n_tensors, double dormant_threshold,
                  bool extended, double* rows, int64_t* hist);

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
