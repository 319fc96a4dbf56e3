// Statistics of one GPU thread's span: the elements a thread of the CUDA chunk kernel
// reads (a strided set of 16-byte loads, plus at most one head and one tail element),
// taken in ONE accumulator set instead of one tile per load (review F8).
//
// The CPU takes a tile of 2048 contiguous elements from L1 and may sweep it twice; a GPU
// thread's span is spread over a whole chunk, so a second sweep costs memory traffic.
// So the thread sweeps once with sums shifted by its first element K (Σd, Σd², and for
// the extended pass Σd³, Σd⁴, with d = x - K), checks the conditioning ONCE at the end,
// and re-reads its span only when that check fails:
//   - kSpanTwoPass: all finite but K was a poor guess (the one-sweep M2 = Σd² - (Σd)²/n
//     would cancel too much): one more sweep of deviations from the sweep's mean.
//   - kSpanSlow: NaN/Inf present, or a sum overflowed (|x| near 1.8e308): the exact
//     scalar path of stats.h's tile_stats_slow (counts, half-unit scaling), over the span.
// Everything here is a pure function of the values it is handed, in the order handed:
// the caller (csrc/cuda/kernel_body.h) visits the span in one fixed order, the same in
// the device build and in the host emulation, so both give the same bits.
#pragma once

#include <cstdint>

#include "fusedstats/stats.h"

namespace fusedstats {

// How much of Σd² the one-sweep M2 = Σd² - (Σd)²/n may cancel before a thread re-reads
// its span two-pass (compare kTileMaxCancel = 0.5 on the CPU, where the tile is in L1
// and a second sweep is free; here it costs memory traffic). K is one of the span's own
// elements (d = 0 for it), so by Cauchy-Schwarz (Σd)²/n <= (n-1)/n · Σd²: the ratio can
// only pass 0.999 for spans of more than 1000 elements, i.e. never in a 2^16-element
// chunk (<= 256 per thread) and only in a long row's chunk. The cancellation thus
// amplifies the sums' rounding at most min(n, 1000) times: for 256 elements per thread
// that is <= 256 · 256 · 2^-53 ≈ 7e-12 relative error in a thread's M2 at worst (the
// spec's bound for float64 input is 1e-9), and no re-read.
constexpr double kSpanMaxCancel = 0.999;
// The extended pass takes M3/M4 from Σd³/Σd⁴ about K too, and M4's raw-moment formula
// cancels like (mean - K)⁴/σ⁴: this bound (|mean - K| <= 3.9 σ) keeps M4's
// amplification near 100x; beyond it the thread re-reads (a ~1e-4 chance for Gaussian
// data, more for heavy tails: the extended pass is opt-in and pays that).
constexpr double kSpanExtMaxCancel = 0.9375;

enum SpanOutcome : int32_t { kSpanFast = 0, kSpanTwoPass = 1, kSpanSlow = 2, kNumSpanOutcomes };

// ---- the one sweep -------------------------------------------------------------------

template <int32_t D, bool kExt>
struct SpanSums {
  using N = typename Elem<D>::N;
  double k;  // the shift: the span's first element (widened)
  double sd, sq, a;
  double s3, s4;  // extended pass only
  N lo, hi;
  int64_t n, z;
};

template <int32_t D, bool kExt>
FS_FN void span_begin(SpanSums<D, kExt>& s, typename Elem<D>::N first) {
  using N = typename Elem<D>::N;
  s.k = static_cast<double>(first);
  s.sd = s.sq = s.a = s.s3 = s.s4 = 0.0;
  s.lo = static_cast<N>(fs_inf());
  s.hi = static_cast<N>(-fs_inf());
  s.n = s.z = 0;
}

// Per element: 1 conversion, 3 adds and 1 FMA in float64 (the extended pass adds a
// multiply and 2 FMAs); comparisons in the narrow type N.
template <int32_t D, bool kExt>
FS_FN void span_add(SpanSums<D, kExt>& s, typename Elem<D>::N xn) {
  using N = typename Elem<D>::N;
  const double x = static_cast<double>(xn);
  const double d = x - s.k;
  s.sd += d;
  s.sq = FS_FMA(d, d, s.sq);
  s.a += fabs(x);
  s.z += xn == N(0) ? 1 : 0;
  s.lo = xn < s.lo ? xn : s.lo;
  s.hi = xn > s.hi ? xn : s.hi;
  ++s.n;
  if (kExt) {
    const double d2 = d * d;
    s.s3 = FS_FMA(d2, d, s.s3);
    s.s4 = FS_FMA(d2, d2, s.s4);
  }
}

// The thread's Partial (and M3/M4) from its sums when they are well conditioned; else
// which re-read it needs. Mirrors tile_stats_fast's checks.
template <int32_t D, bool kExt>
FS_FN int32_t span_finish(const SpanSums<D, kExt>& s, Partial& t, ExtPartial* te) {
  const double k = s.k;
  if (!(s.a <= kMaxFinite) || !(k <= kMaxFinite && k >= -kMaxFinite)) return kSpanSlow;
  const double nd = static_cast<double>(s.n);
  const double mean_d = s.sd / nd;
  const double between = s.sd * mean_d;  // n·mean_d²
  const double bound = kExt ? kSpanExtMaxCancel : kSpanMaxCancel;
  // sq <= kMaxFinite: d = x - K overflows for |x| near 1.8e308, and inf <= inf passes.
  if (!(between <= bound * s.sq) || !(s.sq <= kMaxFinite)) return kSpanTwoPass;
  if (kExt && !(s.s4 <= kMaxFinite && fabs(s.s3) <= kMaxFinite)) return kSpanTwoPass;
  t.numel = s.n;
  t.n_nan = t.n_inf = t.n_dormant = 0;
  t.n_zero = s.z;
  t.n_finite = s.n;
  t.sum = s.sd + nd * k;
  t.l1 = s.a;
  t.shift = k;
  t.mean = mean_d;
  t.m2 = s.sq - between;
  const double mean = k + mean_d;
  t.sumsq = t.m2 + nd * mean * mean;  // Σx² = M2 + n·mean²: non-negative terms
  t.min = static_cast<double>(s.lo);
  t.max = static_cast<double>(s.hi);
  if (kExt) {
    // Central moments from the shifted power sums (m = mean_d):
    //   M3 = S3 - 3m S2 + 2n m³,  M4 = S4 - 4m S3 + 6m² S2 - 3n m⁴.
    const double m = mean_d;
    te->m3 = s.s3 - 3.0 * m * s.sq + 2.0 * nd * m * m * m;
    te->m4 = s.s4 - 4.0 * m * s.s3 + 6.0 * m * m * s.sq - 3.0 * nd * m * m * m * m;
  }
  return kSpanFast;
}

// ---- re-read 1: two-pass about the sweep's mean (all values finite) ------------------

struct SpanTwoPass {
  double m0;  // the first sweep's mean, K + Σd/n (its rounding is corrected below)
  double s, e, m, m3, m4;
};

template <int32_t D, bool kExt>
FS_FN bool span_two_pass_begin(const SpanSums<D, kExt>& s, SpanTwoPass& tp) {
  tp.m0 = s.k + s.sd / static_cast<double>(s.n);
  tp.s = tp.e = tp.m = tp.m3 = tp.m4 = 0.0;
  return fs_finite(tp.m0);  // Σd overflowed: the slow path scales
}

template <int32_t D, bool kExt>
FS_FN void span_two_pass_add(SpanTwoPass& tp, typename Elem<D>::N xn) {
  const double x = static_cast<double>(xn);
  const double d = x - tp.m0;
  tp.s += x;
  tp.e += d;
  tp.m += d * d;
  if (kExt) {
    const double d2 = d * d;
    tp.m3 += d2 * d;
    tp.m4 += d2 * d2;
  }
}

// Corrected two-pass, as tile_stats_two_pass; l1, zeros and extremes come from the sweep.
// False when Σ(x - m0)² overflowed (the caller then takes the slow path).
template <int32_t D, bool kExt>
FS_FN bool span_two_pass_finish(const SpanSums<D, kExt>& s, const SpanTwoPass& tp, Partial& t,
                                ExtPartial* te) {
  if (!(tp.m <= kMaxFinite)) return false;
  const double nd = static_cast<double>(s.n);
  const double c = tp.e / nd;
  t.numel = s.n;
  t.n_nan = t.n_inf = t.n_dormant = 0;
  t.n_zero = s.z;
  t.n_finite = s.n;
  t.sum = tp.s;
  t.l1 = s.a;
  t.shift = tp.m0;
  t.mean = c;
  t.m2 = tp.m - tp.e * c;
  t.sumsq = t.m2 + tp.s * tp.s / nd;
  t.min = static_cast<double>(s.lo);
  t.max = static_cast<double>(s.hi);
  if (kExt) {
    te->m3 = tp.m3 - 3.0 * c * tp.m + 2.0 * nd * c * c * c;
    te->m4 = tp.m4 - 4.0 * c * tp.m3 + 6.0 * c * c * tp.m - 3.0 * nd * c * c * c * c;
  }
  return true;
}

// ---- re-read 2: the exact scalar path (NaN/Inf, overflow) -----------------------------
// tile_stats_slow's algorithm over a span: sweep 1 counts and takes sum/l1/extremes of
// the finite values; if their sum overflowed, sweep 1b takes the mean as Σ x/n; sweep 2
// takes deviations in half units when |x| reaches 2^1023, so nothing overflows into NaN.

FS_FN void span_slow_begin(Partial& t) { t = partial_empty(); }

FS_FN void span_slow_add1(Partial& t, double x) {
  ++t.numel;
  count_one(t, x);
}

struct SpanSlow {
  double nd, scale, m0;
  double k, acc;  // sweep 1b: m0 = k + Σ(x - k)/n in scaled units (k: a finite element)
  double sd, m2, m3, m4;
};

// After sweep 1: false when sweep 1b (the mean as Σ x/n) is needed.
//
// The scale, as tile_stats_slow: halved until n·2·max|x| fits, so that Σd (|d| <=
// 2·max|x|) cannot overflow. Powers of two: exact, except for elements below 2^-1000 of
// max|x|, which the moments cannot see anyway.
FS_FN bool span_slow_mid(const Partial& t, SpanSlow& sl) {
  sl.nd = static_cast<double>(t.n_finite);
  const double abs_max = fabs(t.min) > fabs(t.max) ? fabs(t.min) : fabs(t.max);
  sl.scale = 1.0;
  for (int i = 0; i < 2100 && (abs_max * sl.scale) * (2.0 * sl.nd) > kMaxFinite; ++i) sl.scale *= 0.5;
  sl.m0 = t.sum / sl.nd;
  sl.sd = sl.m2 = sl.m3 = sl.m4 = 0.0;
  if (fs_finite(sl.m0)) return true;
  // The sum overflowed: the mean about a finite element (the minimum), as the CPU's
  // tile_stats_slow does, so that constant data gives it exactly (Σx/n would round,
  // and at 1e308 the deviations of that rounding square to inf).
  sl.k = t.min;
  sl.acc = 0.0;
  return false;
}

FS_FN void span_slow_add_mean(SpanSlow& sl, double x) {
  if (x == x && fabs(x) <= kMaxFinite) sl.acc += x * sl.scale - sl.k * sl.scale;
}

FS_FN void span_slow_mean_done(SpanSlow& sl) {
  sl.m0 = (sl.k * sl.scale + sl.acc / sl.nd) / sl.scale;
}

template <bool kExt>
FS_FN void span_slow_add2(SpanSlow& sl, double x) {
  if (x == x && fabs(x) <= kMaxFinite) {
    const double d = x * sl.scale - sl.m0 * sl.scale;
    sl.sd += d;
    sl.m2 += d * d;
    if (kExt) {
      sl.m3 += d * d * d;
      sl.m4 += (d * d) * (d * d);
    }
  }
}

template <bool kExt>
FS_FN void span_slow_finish(const SpanSlow& sl, Partial& t, ExtPartial* te) {
  if (t.n_finite == 0) {
    if (kExt) te->m3 = te->m4 = 0.0;
    return;
  }
  const double nd = sl.nd, scale = sl.scale;
  const double c = sl.sd / nd;  // corrects the rounding of m0 (in scaled units)
  const double inv2 = 1.0 / (scale * scale);
  t.shift = sl.m0;
  t.mean = c / scale;
  // Σd·c = (Σd)²/n <= Σd² by Cauchy-Schwarz: finite whenever Σd² is; when Σd² overflowed,
  // so does M2 (the data's spread is beyond float64), and inf - inf must not happen.
  t.m2 = fs_finite(sl.m2) ? (sl.m2 - sl.sd * c) * inv2 : fs_inf();
  t.sumsq = t.m2 + nd * (sl.m0 + c / scale) * (sl.m0 + c / scale);
  if (kExt) {
    te->m3 = (sl.m3 - 3.0 * c * sl.m2 + 2.0 * nd * c * c * c) * (inv2 / scale);
    te->m4 = (sl.m4 - 4.0 * c * sl.m3 + 6.0 * c * c * sl.m2 - 3.0 * nd * c * c * c * c) *
             (inv2 * inv2);
  }
}

}  // namespace fusedstats
