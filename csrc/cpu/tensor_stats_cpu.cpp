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
  ChunkLoop loop;
};

std::vector<SimdChoice> available() {
  std::vector<SimdChoice> out;
#if defined(FUSEDSTATS_HAVE_AVX2)
  if (cpu_has_avx2()) out.push_back({"avx2", &avx2::chunk_partials});
#endif
  out.push_back({"baseline", &baseline::chunk_partials});
  return out;
}

SimdChoice& current() {
  static SimdChoice choice = available().front();
  return choice;
}

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

void tensor_stats(const TensorDesc* tensors, int64_t n_tensors, double dormant_threshold,
                  double* out) {
  const Plan plan = make_plan(tensors, n_tensors, kChunkElems);
  const int64_t n_chunks = static_cast<int64_t>(plan.chunks.size());
  std::vector<Partial> partials(static_cast<size_t>(n_chunks));
  int64_t total = 0;
  for (int64_t t = 0; t < n_tensors; ++t) total += tensors[t].numel;
  const int threads = get_num_threads();
  current().loop(plan.chunks.data(), n_chunks, dormant_threshold, partials.data(), threads,
                 threads > 1 && total >= kParallelMinElems);

  Partial global = partial_empty();
  for (int64_t t = 0; t < n_tensors; ++t) {
    Partial acc = partial_empty();
    for (int64_t c = plan.first_chunk[t]; c < plan.first_chunk[t + 1]; ++c)
      partial_merge(acc, partials[static_cast<size_t>(c)]);
    partial_finalize(acc, out + t * kNumColumns);
    partial_merge(global, acc);
  }
  partial_finalize(global, out + n_tensors * kNumColumns);
}

}  // namespace cpu
}  // namespace fusedstats
