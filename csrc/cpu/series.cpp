// Batch reductions and parallel merges of the MetricsLogger's value series.
#include "fusedstats/series.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace fusedstats {
namespace series {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double nan_to_zero(double x) { return std::isnan(x) ? 0.0 : x; }

// numpy's pairwise summation (its add.reduce on contiguous float64), with NaN read as
// 0 as numpy.nansum/nanmean do: blocks of up to 128 in 8 accumulators, halves above.
// Summing in the same order makes means and sums equal numpy's to the last bit, so a
// user switching from RLlib (numpy) gets the same numbers, not just close ones.
double pairwise_sum(const double* a, int64_t n) {
  constexpr int64_t kBlock = 128;
  if (n < 8) {
    double res = 0.0;
    for (int64_t i = 0; i < n; ++i) res += nan_to_zero(a[i]);
    return res;
  }
  if (n <= kBlock) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = nan_to_zero(a[j]);
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += nan_to_zero(a[i + j]);
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += nan_to_zero(a[i]);
    return res;
  }
  int64_t half = n / 2;
  half -= half % 8;
  return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

int64_t count_not_nan(const double* a, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += std::isnan(a[i]) ? 0 : 1;
  return c;
}

double reduce_one(const double* v, int64_t n, int8_t op, double ema_coeff) {
  switch (op) {
    case kEma: {
      if (n == 0) return kNaN;
      double m = v[0];
      for (int64_t i = 1; i < n; ++i) m = ema_coeff * v[i] + (1.0 - ema_coeff) * m;
      return m;
    }
    case kSum: {
      if (n == 0) return 0.0;
      return count_not_nan(v, n) ? pairwise_sum(v, n) : kNaN;
    }
    case kMin:
    case kMax: {
      double best = kNaN;
      for (int64_t i = 0; i < n; ++i) {
        const double x = v[i];
        if (std::isnan(x)) continue;
        if (std::isnan(best) || (op == kMin ? x < best : x > best)) best = x;
      }
      return best;
    }
    default: {  // kMean
      const int64_t seen = count_not_nan(v, n);
      return seen ? pairwise_sum(v, n) / static_cast<double>(seen) : kNaN;
    }
  }
}

}  // namespace

void reduce(const double* values, const int64_t* offsets, const int8_t* ops,
            const double* ema_coeffs, int64_t n_series, double* out) {
  for (int64_t i = 0; i < n_series; ++i) {
    const int64_t a = offsets[i];
    out[i] = reduce_one(values + a, offsets[i + 1] - a, ops[i], ema_coeffs[i]);
  }
}

void percentiles(const double* values, const int64_t* offsets, int64_t n_series,
                 const double* q, const int64_t* q_offsets, double* out) {
  std::vector<double> sorted;
  for (int64_t i = 0; i < n_series; ++i) {
    sorted.clear();
    for (int64_t k = offsets[i]; k < offsets[i + 1]; ++k)
      if (!std::isnan(values[k])) sorted.push_back(values[k]);
    std::sort(sorted.begin(), sorted.end());
    const auto n = static_cast<int64_t>(sorted.size());
    for (int64_t j = q_offsets[i]; j < q_offsets[i + 1]; ++j) {
      if (n == 0) {
        out[j] = kNaN;
        continue;
      }
      // numpy's default "linear" method, with its operation order (q / 100 first,
      // and its two-sided lerp), so the numbers equal numpy.percentile's.
      const double pos = (q[j] / 100.0) * static_cast<double>(n - 1);
      const auto lo = static_cast<int64_t>(std::floor(pos));
      const int64_t hi = lo + 1 < n ? lo + 1 : lo;
      const double t = pos - static_cast<double>(lo);
      const double a = sorted[lo], diff = sorted[hi] - a;
      out[j] = t >= 0.5 ? sorted[hi] - diff * (1.0 - t) : a + diff * t;
    }
  }
}

MergeOut merge_parallel(const double* values, const uint8_t* is_int, const int64_t* offsets,
                        const int64_t* group_first, int64_t n_groups, const int8_t* ops,
                        const int64_t* windows) {
  MergeOut out;
  out.offsets.push_back(0);
  std::vector<int64_t> src;
  std::vector<double> val;
  std::vector<double> at_index;
  for (int64_t g = 0; g < n_groups; ++g) {
    const int64_t s0 = group_first[g];
    const int64_t s1 = group_first[g + 1];
    const int8_t op = ops[g];
    const int64_t window = windows[g];
    int64_t longest = 0;
    for (int64_t s = s0; s < s1; ++s) longest = std::max(longest, offsets[s + 1] - offsets[s]);
    src.clear();
    val.clear();
    for (int64_t i = 1; i <= longest; ++i) {
      at_index.clear();
      double best = kNaN;
      int64_t best_at = -1;
      bool all_ints = true;
      for (int64_t s = s0; s < s1; ++s) {
        const int64_t len = offsets[s + 1] - offsets[s];
        if (len < i) continue;
        const int64_t k = offsets[s + 1] - i;
        const double x = values[k];
        if (op == kSum || op == kNone) {
          src.push_back(k - offsets[s0]);
          val.push_back(x);
          continue;
        }
        at_index.push_back(x);
        all_ints = all_ints && is_int[k] != 0;
        if (!std::isnan(x) && (std::isnan(best) || (op == kMin ? x < best : x > best))) {
          best = x;
          best_at = k - offsets[s0];
        }
      }
      if (op != kSum && op != kNone) {
        const auto present = static_cast<int64_t>(at_index.size());
        const bool extreme = op == kMin || op == kMax;
        double merged = best;
        if (!extreme) {
          const int64_t seen = count_not_nan(at_index.data(), present);
          merged = seen ? pairwise_sum(at_index.data(), present) / static_cast<double>(seen) : kNaN;
        }
        // min/max name the value they took, so the caller can keep its type (int).
        const int64_t from = extreme && all_ints ? best_at : -1;
        for (int64_t r = 0; r < present; ++r) {
          src.push_back(from);
          val.push_back(merged);
        }
      }
      if (window > 0 && static_cast<int64_t>(val.size()) >= window) break;
    }
    for (auto it = src.rbegin(); it != src.rend(); ++it) out.source.push_back(*it);
    for (auto it = val.rbegin(); it != val.rend(); ++it) out.value.push_back(*it);
    out.offsets.push_back(static_cast<int64_t>(out.value.size()));
  }
  return out;
}

}  // namespace series
}  // namespace fusedstats
