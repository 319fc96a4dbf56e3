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

}  // namespace

// numpy's pairwise summation (its add.reduce on contiguous float64), with NaN read as
// 0 as numpy.nansum/nanmean do: blocks of up to 128 in 8 accumulators, halves above.
// Summing in the same order makes means and sums equal numpy's to the last bit, so a
// user switching from RLlib (numpy) gets the same numbers, not just close ones.
double nan_pairwise_sum(const double* a, int64_t n) {
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
  return nan_pairwise_sum(a, half) + nan_pairwise_sum(a + half, n - half);
}

int64_t count_not_nan(const double* a, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += std::isnan(a[i]) ? 0 : 1;
  return c;
}

namespace {

double reduce_one(const double* v, int64_t n, int8_t op, double ema_coeff) {
  switch (op) {
    case kEma: {
      if (n == 0) return kNaN;
      double m = v[0];
      for (int64_t i = 1; i < n; ++i) m = ema_coeff * v[i] + (1.0 - ema_coeff) * m;
      return m;
    }
    case kSum:  // numpy.nansum: NaN read as 0, so all-NaN (or nothing) sums to 0
      return nan_sum(v, n);
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
      return seen ? nan_sum(v, n) / static_cast<double>(seen) : kNaN;
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

}  // namespace series
}  // namespace fusedstats
