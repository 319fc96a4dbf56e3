// Reductions and merges of many short value series at once (the MetricsLogger's
// keys): one call reduces every key, instead of a Python loop per key.
//
// A batch is a flat array of values with offsets: series i is
// values[offsets[i] .. offsets[i+1]). Semantics follow spec/metrics_logger.md:
// mean/min/max/sum ignore NaN (all-NaN -> NaN; empty -> NaN, sum -> 0); EMA starts at
// the first value and folds m = c*v + (1-c)*m, a NaN poisons it.
#pragma once

#include <cstdint>
#include <vector>

namespace fusedstats {
namespace series {

enum Op : int8_t { kMean = 0, kEma = 1, kMin = 2, kMax = 3, kSum = 4, kNone = 5 };

// out[i] = reduction of series i.
void reduce(const double* values, const int64_t* offsets, const int8_t* ops,
            const double* ema_coeffs, int64_t n_series, double* out);

// Linear-interpolation percentiles (numpy's default method) of the non-NaN values of
// each series; q[q_offsets[i] .. q_offsets[i+1]) are series i's percentiles in
// [0, 100], written to out at the same positions. No non-NaN value -> NaN.
void percentiles(const double* values, const int64_t* offsets, int64_t n_series,
                 const double* q, const int64_t* q_offsets, double* out);

// The parallel merge of groups of series (spec: merge_in_parallel). Group g merges
// series [group_first[g], group_first[g+1]), the first being the base. Walking all
// series from their ends, index by index, the values present at that index give:
// kSum/kNone: themselves, in series order; kMean/kMin/kMax: their NaN-ignoring
// mean/min/max, once per value; kEma: their NaN-ignoring mean, once per value. The
// walk stops once the new series has >= window values (window <= 0: never); the
// result is reversed. Output: for each group, entries (source: index of the value
// counted from the group's first value, or -1 for a computed mean; value), at
// out_offsets[g] .. out_offsets[g+1]. Pass-through entries and min/max name their
// source, so the caller can keep the original object (an int, a list item).
struct MergeOut {
  std::vector<int64_t> source;
  std::vector<double> value;
  std::vector<int64_t> offsets;
};
// is_int[k]: values[k] was an integer. A min/max names its source only when every
// value at that index was an integer (numpy's nanmin of ints is an int, of a mix a
// float); otherwise it is a computed float (-1).
MergeOut merge_parallel(const double* values, const uint8_t* is_int, const int64_t* offsets,
                        const int64_t* group_first, int64_t n_groups, const int8_t* ops,
                        const int64_t* windows);

}  // namespace series
}  // namespace fusedstats
