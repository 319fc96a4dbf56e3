// CPU tensor statistics: plan chunks, run the per-ISA chunk loop, merge in table order.
#if defined(_OPENMP)
#include <omp.h>
#endif

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu_kernels.h"

namespace fusedstats {
namespace cpu {

namespace {

std::atomic<int> g_num_threads{0};  // 0: not set, use omp_get_max_threads()

using ChunkLoop = void (*)(const Chunk*, int64_t, double, Partial*, int, bool);
using RecordLoop = void (*)(const Chunk*, int64_t, double, ExtRecord*, int, bool);
using UnitSumLoop = void (*)(const void*, int32_t, int64_t, int64_t, int64_t, double*, int, bool);

bool cpu_has_avx2() {
#if defined(FUSEDSTATS_HAVE_AVX2) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

struct SimdChoice {
  std::string name;
  ChunkLoop partials;
  RecordLoop records;
  UnitSumLoop unit_sums;
};

std::vector<SimdChoice> available() {
  std::vector<SimdChoice> out;
#if defined(FUSEDSTATS_HAVE_AVX2)
  if (cpu_has_avx2())
    out.push_back({"avx2", &avx2::chunk_partials, &avx2::chunk_records, &avx2::unit_abs_sums});
#endif
  out.push_back({"baseline", &baseline::chunk_partials, &baseline::chunk_records,
                 &baseline::unit_abs_sums});
  return out;
}

SimdChoice& current() {
  static SimdChoice choice = available().front();
  return choice;
}

const SimdChoice& current_loop() { return current(); }

}  // namespace

void set_num_threads(int n) { g_num_threads.store(n < 1 ? 1 : n); }

int get_num_threads() {
  const int n = g_num_threads.load();
#if defined(_OPENMP)
  return n > 0 ? n : omp_get_max_threads();
#else
  return n > 0 ? n : 1;
#endif
}

bool openmp_enabled() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

std::vector<std::string> simd_levels() {
  std::vector<std::string> names;
  for (const auto& c : available()) names.push_back(c.name);
  return names;
}

std::string simd_level() { return current().name; }

bool set_simd_level(const std::string& name) {
  for (const auto& c : available()) {
    if (c.name == name) {
      current() = c;
      return true;
    }
  }
  return false;
}

int64_t record_bytes(bool extended) {
  return static_cast<int64_t>(extended ? sizeof(ExtRecord) : sizeof(Partial));
}

namespace {

template <class R>
struct Records;
template <>
struct Records<Partial> {
  static void empty(Partial& r) { r = partial_empty(); }
  static void merge(Partial& a, const Partial& b) { partial_merge(a, b); }
  static void chunks(const Chunk* c, int64_t n, double thr, Partial* out, int threads, bool par) {
    current_loop().partials(c, n, thr, out, threads, par);
  }
};
template <>
struct Records<ExtRecord> {
  static void empty(ExtRecord& r) { record_empty(r); }
  static void merge(ExtRecord& a, const ExtRecord& b) { record_merge(a, b); }
  static void chunks(const Chunk* c, int64_t n, double thr, ExtRecord* out, int threads, bool par) {
    current_loop().records(c, n, thr, out, threads, par);
  }
};

template <class R>
void records_of(const TensorDesc* tensors, int64_t n_tensors, double dormant_threshold, R* out,
                bool accumulate) {
  const Plan plan = make_plan(tensors, n_tensors, kChunkElems);
  const int64_t n_chunks = static_cast<int64_t>(plan.chunks.size());
  std::vector<R> chunk_records(static_cast<size_t>(n_chunks));
  int64_t total = 0;
  for (int64_t t = 0; t < n_tensors; ++t) total += tensors[t].numel;
  const int threads = get_num_threads();
  Records<R>::chunks(plan.chunks.data(), n_chunks, dormant_threshold, chunk_records.data(),
                     threads, threads > 1 && total >= kParallelMinElems);
  for (int64_t t = 0; t < n_tensors; ++t) {
    R acc;
    Records<R>::empty(acc);
    for (int64_t c = plan.first_chunk[t]; c < plan.first_chunk[t + 1]; ++c)
      Records<R>::merge(acc, chunk_records[static_cast<size_t>(c)]);
    if (accumulate) {
      Records<R>::merge(out[t], acc);
    } else {
      out[t] = acc;
    }
  }
}

void finalize_one(const Partial& r, double* row, int64_t*) { partial_finalize(r, row); }
void finalize_one(const ExtRecord& r, double* row, int64_t* hist) {
  partial_finalize(r.base, row);
  ext_finalize(r.base, r.ext, r.hist, row);
  for (int b = 0; b < kHistBins; ++b) hist[b] = r.hist[b];
}

template <class R>
void finalize_of(const R* records, int64_t n, int64_t width, double* rows, int64_t* hist) {
  R global;
  Records<R>::empty(global);
  for (int64_t t = 0; t <= n; ++t) {
    const R& r = t < n ? records[t] : global;
    finalize_one(r, rows + t * width, hist ? hist + t * kHistBins : nullptr);
    if (t < n) Records<R>::merge(global, r);
  }
}

template <class R>
void merge_of(const R* src, int64_t n_sources, int64_t n, const uint8_t* include, R* dst) {
  for (int64_t t = 0; t < n; ++t) {
    R acc;
    Records<R>::empty(acc);
    for (int64_t s = 0; s < n_sources; ++s)
      if (include == nullptr || include[s * n + t]) Records<R>::merge(acc, src[s * n + t]);
    dst[t] = acc;
  }
}

}  // namespace

void tensor_records(const TensorDesc* tensors, int64_t n_tensors, double dormant_threshold,
                    bool extended, void* records, bool accumulate) {
  if (extended) {
    records_of(tensors, n_tensors, dormant_threshold, static_cast<ExtRecord*>(records), accumulate);
  } else {
    records_of(tensors, n_tensors, dormant_threshold, static_cast<Partial*>(records), accumulate);
  }
}

void finalize_records(const void* records, int64_t n, bool extended, double* rows, int64_t* hist) {
  if (extended) {
    finalize_of(static_cast<const ExtRecord*>(records), n, kNumExtColumns, rows, hist);
  } else {
    finalize_of(static_cast<const Partial*>(records), n, kNumColumns, rows, nullptr);
  }
}

void merge_records(const void* src, int64_t n_sources, int64_t n, bool extended,
                   const uint8_t* include, void* dst) {
  if (extended) {
    merge_of(static_cast<const ExtRecord*>(src), n_sources, n, include, static_cast<ExtRecord*>(dst));
  } else {
    merge_of(static_cast<const Partial*>(src), n_sources, n, include, static_cast<Partial*>(dst));
  }
}

void unit_abs_sums(const void* data, int32_t dtype, int64_t before, int64_t units, int64_t after,
                   double* acc) {
  const int threads = get_num_threads();
  const bool parallel = threads > 1 && units >= 32 && before * units * after >= kParallelMinElems;
  current_loop().unit_sums(data, dtype, before, units, after, acc, threads, parallel);
}

void tensor_stats(const TensorDesc* tensors, int64_t n_tensors, double dormant_threshold,
                  bool extended, double* rows, int64_t* hist) {
  if (extended) {
    std::vector<ExtRecord> records(static_cast<size_t>(n_tensors));
    records_of(tensors, n_tensors, dormant_threshold, records.data(), false);
    finalize_of(records.data(), n_tensors, kNumExtColumns, rows, hist);
  } else {
    std::vector<Partial> records(static_cast<size_t>(n_tensors));
    records_of(tensors, n_tensors, dormant_threshold, records.data(), false);
    finalize_of(records.data(), n_tensors, kNumColumns, rows, nullptr);
  }
}

}  // namespace cpu
}  // namespace fusedstats
