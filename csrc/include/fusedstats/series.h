// Reductions and merges of many short value series at once (the MetricsLogger's
// keys): one call reduces every key, instead of a Python loop per key.
//
// A batch is a flat array of values with offsets: series i is
// values[offsets[i] .. offsets[i+1]). Semantics: docs/logger.md ("Reductions"):
// mean/min/max ignore NaN (all-NaN or empty -> NaN); sum is numpy.nansum (NaN read as
// 0: all-NaN or empty -> 0); EMA starts at the first value and folds m = c*v + (1-c)*m,
// a NaN poisons it.
#pragma once

#include <cmath>
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

// numpy's pairwise summation order with NaN read as 0, and the count of non-NaN
// values: the building blocks of every sum and mean here. nan_sum is numpy.nansum:
// its reduction starts from the identity 0.0, so a sum of -0.0s is 0.0.
double nan_pairwise_sum(const double* a, int64_t n);
inline double nan_sum(const double* a, int64_t n) { return 0.0 + nan_pairwise_sum(a, n); }
int64_t count_not_nan(const double* a, int64_t n);

struct MergeOut {
  std::vector<int64_t> source_series;  // -1: a computed value
  std::vector<int64_t> source_index;
  std::vector<double> value;
  std::vector<int64_t> offsets;
};

// The parallel merge of groups of series (docs/logger.md, "Merging"). Group g merges
// series [group_first[g], group_first[g+1]), the first being the base; series s has
// lens[s] values. Walking all series from their ends, index by index, the values
// present at that index give: kSum/kNone: themselves, in series order; kMean/kMin/
// kMax: their NaN-ignoring mean/min/max, once per value; kEma: their NaN-ignoring mean,
// once per value. The walk stops once the new series has >= window values (window <= 0:
// never); the result is reversed. Only the values the walk reaches are read, through
// read(s, k) -> Value (k counted from the series' start), and a list's (kNone) items
// are not read at all: with a window of W a long series costs W reads, not its length.
// A windowed result keeps only its last W values (the walk may leave up to
// W + n - 1; a window reads only the last W, and a windowed Stats holds no more).
//
// Output per group, at out.offsets[g] .. out.offsets[g+1]: (source, value), source
// being the value's place as (series, index in it), or -1 for a computed value.
// Pass-through entries and min/max name their source so the caller can keep the
// original object (an int, a list item); a min/max names it only when every value at
// that index was an int (numpy's nanmin of ints is an int, of a mix a float).
struct Value {
  double x;
  bool is_int;
};

template <class Read>
MergeOut merge_parallel(Read&& read, const int64_t* lens, const int64_t* group_first,
                        int64_t n_groups, const int8_t* ops, const int64_t* windows) {
  const double nan = std::nan("");
  MergeOut out;
  out.offsets.push_back(0);
  std::vector<int64_t> src_s, src_k;
  std::vector<double> val, at_index;
  for (int64_t g = 0; g < n_groups; ++g) {
    const int64_t s0 = group_first[g];
    const int64_t s1 = group_first[g + 1];
    const int8_t op = ops[g];
    const bool pass = op == kSum || op == kNone;
    const bool extreme = op == kMin || op == kMax;
    int64_t longest = 0;
    for (int64_t s = s0; s < s1; ++s) longest = lens[s] > longest ? lens[s] : longest;
    src_s.clear();
    src_k.clear();
    val.clear();
    for (int64_t i = 1; i <= longest; ++i) {
      at_index.clear();
      double best = nan;
      int64_t best_s = -1, best_k = -1;
      bool all_ints = true;
      for (int64_t s = s0; s < s1; ++s) {
        const int64_t len = lens[s];
        if (len < i) continue;
        if (pass) {
          src_s.push_back(s);
          src_k.push_back(len - i);
          // A sum's numbers are read (a float sum needs no original objects); a
          // list's items may be anything: the caller takes them by source.
          val.push_back(op == kSum ? read(s, len - i).x : 0.0);
          continue;
        }
        const Value v = read(s, len - i);
        at_index.push_back(v.x);
        all_ints = all_ints && v.is_int;
        if (!std::isnan(v.x) && (std::isnan(best) || (op == kMin ? v.x < best : v.x > best))) {
          best = v.x;
          best_s = s;
          best_k = len - i;
        }
      }
      if (!pass) {
        const auto present = static_cast<int64_t>(at_index.size());
        double merged = best;
        if (!extreme) {
          const int64_t seen = count_not_nan(at_index.data(), present);
          merged = seen ? nan_sum(at_index.data(), present) / static_cast<double>(seen)
                        : nan;
        }
        const bool keep = extreme && all_ints;
        for (int64_t r = 0; r < present; ++r) {
          src_s.push_back(keep ? best_s : -1);
          src_k.push_back(keep ? best_k : -1);
          val.push_back(merged);
        }
      }
      if (windows[g] > 0 && static_cast<int64_t>(val.size()) >= windows[g]) break;
    }
    if (windows[g] > 0 && static_cast<int64_t>(val.size()) > windows[g]) {
      src_s.resize(static_cast<size_t>(windows[g]));
      src_k.resize(static_cast<size_t>(windows[g]));
      val.resize(static_cast<size_t>(windows[g]));
    }
    out.source_series.insert(out.source_series.end(), src_s.rbegin(), src_s.rend());
    out.source_index.insert(out.source_index.end(), src_k.rbegin(), src_k.rend());
    out.value.insert(out.value.end(), val.rbegin(), val.rend());
    out.offsets.push_back(static_cast<int64_t>(out.value.size()));
  }
  return out;
}

}  // namespace series
}  // namespace fusedstats
