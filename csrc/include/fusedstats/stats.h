// The arithmetic of fused tensor statistics, written once for host and device.
//
// Everything here is a free function with internal linkage (FS_FN): the CPU kernel
// is compiled once per instruction set (baseline and AVX2) and the linker must never
// pick the AVX2 copy of an inline helper for the baseline path, which `static`
// guarantees. No member functions, no std:: containers: this compiles under nvcc and
// in the host emulation of the CUDA kernels (csrc/emu/).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define FS_FN static __host__ __device__ __forceinline__
#else
#define FS_FN static inline
#endif

#define FS_PRAGMA(x) _Pragma(#x)

#if defined(_OPENMP) && !defined(__CUDA_ARCH__)
#ifndef FS_SIMDLEN
#define FS_SIMDLEN 8
#endif
#define FS_SIMD_REDUCE(clauses) FS_PRAGMA(omp simd simdlen(FS_SIMDLEN) clauses)
#else
#define FS_SIMD_REDUCE(clauses)
#endif
// Explicit FMA where the target has it (AVX2+FMA copy, CUDA); a*b+c elsewhere, so the
// baseline copy never calls libm's software fma. The host emulation of the CUDA kernels
// (csrc/emu/) defines FS_EMULATE_DEVICE_FMA: libm's fma is correctly rounded whether the
// CPU has the instruction or not, so it rounds as the device does, on any CPU.
#if defined(__CUDACC__) || defined(__FMA__) || defined(FS_EMULATE_DEVICE_FMA)
#define FS_FMA(a, b, c) fma((a), (b), (c))
#else
#define FS_FMA(a, b, c) ((a) * (b) + (c))
#endif

namespace fusedstats {

// Codes Python passes for the element type of a tensor (fusedstats.kernels.DTYPE_CODES;
// tests check the two agree).
enum DType : int32_t {
  kFloat32 = 0,
  kFloat64 = 1,
  kFloat16 = 2,
  kBFloat16 = 3,
  kFloat8E4M3 = 4,  // float8_e4m3fn: no infinities, S.1111.111 is NaN, max 448
  kFloat8E5M2 = 5,  // float8_e5m2: IEEE-like (inf, NaN), max 57344
  kNumDTypes
};

// Columns of one row of the output buffer, in this order. Python mirrors it as
// fusedstats.kernels.COLUMNS; tests check the two agree. The extended columns follow
// the base ones when `extended` is asked for (fusedstats.kernels.EXTENDED_COLUMNS).
enum Column : int32_t {
  kNumel = 0,
  kNNan,
  kNInf,
  kNZero,
  kNFinite,
  kSum,
  kMean,
  kVar,
  kVarPop,
  kStd,
  kMin,
  kMax,
  kAbsMax,
  kL1,
  kNorm,
  kNDormantRows,
  kNumColumns,
  // extended (opt-in)
  kKurtosis = kNumColumns,
  kMinAbsNonzero,
  kDynamicRangeLog2,
  kUnderflowBf16,
  kOverflowBf16,
  kUnderflowFp16,
  kOverflowFp16,
  kUnderflowE4m3,
  kOverflowE4m3,
  kUnderflowE5m2,
  kOverflowE5m2,
  kNumExtColumns
};

// Low-precision formats whose range health the extended pass reports, in column order.
constexpr int kNumFormats = 4;  // bf16, fp16, e4m3 (float8_e4m3fn), e5m2 (float8_e5m2)
// log2 of each format's smallest positive normal number, and its largest finite value.
// Underflow (nonzero, |x| < 2^emin) is read from the exponent histogram; overflow
// (|x| > max) is counted, since the maxima are not powers of two.
FS_FN int format_min_normal_log2(int f) {
  return f == 0 ? -126 : (f == 1 ? -14 : (f == 2 ? -6 : -14));
}
FS_FN double format_max_finite(int f) {
  return f == 0 ? 3.3895313892515355e38 : (f == 1 ? 65504.0 : (f == 2 ? 448.0 : 57344.0));
}

// Exponent histogram of finite elements, per tensor: bin 0 counts zeros; bin 1 nonzero
// |x| < 2^-149 (below float32's smallest subnormal: only float64 data gets there); bin
// kHistBinOffset + e counts ⌊log2|x|⌋ = e for e in [-149, 127] (the whole float32
// range, subnormals included); the last bin |x| >= 2^128 (float64 only).
constexpr int kHistMinExp = -149;
constexpr int kHistMaxExp = 127;
constexpr int kHistBinOffset = 2 - kHistMinExp;                    // bin of exponent e
constexpr int kHistBins = kHistBinOffset + kHistMaxExp + 2;        // 280
constexpr int kHistBinBelow = 1;
constexpr int kHistBinAbove = kHistBins - 1;

// Mergeable state of any set of elements. Moments are (n, mean, M2) merged with
// Chan's formula; sum, l1 and sum of squares are kept as plain sums, because the
// user reads them and n*mean would lose the last digits of a sum near zero.
//
// The mean is stored as `shift + mean` with `shift` a value near the data (the first
// tile's mean estimate). Chan's merge needs mean_b - mean_a to full precision; with
// data at 1e6 ± 1e-3 absolute means carry an ulp of 1e-10, about 1e-6 of the
// difference between two tile means, which showed up as a 3e-9 relative error in var.
// Relative to a shared shift, both means are small and the difference is exact.
//
// The struct is also the wire format of per-tensor partial results (DTensor shards
// exchanged between ranks, activation statistics accumulated over calls): plain
// 8-byte words, the same layout on host and device.
struct Partial {
  int64_t numel;
  int64_t n_nan;
  int64_t n_inf;
  int64_t n_zero;
  int64_t n_finite;
  int64_t n_dormant;  // rows of a 2-D weight whose mean |w| is under the threshold
  double sum;
  double l1;
  double sumsq;
  double shift;
  double mean;  // relative to shift
  double m2;
  double min;
  double max;
};

// What the extended pass adds (opt-in): third and fourth central moment sums about
// the mean (merged with Pébay's formulas), the smallest nonzero |x|, and per format
// the count of |x| above its largest finite value.
struct ExtPartial {
  double m3;
  double m4;
  double min_abs;  // +inf when no finite nonzero element
  int64_t n_over[kNumFormats];
};

// A whole extended record: what one tensor's extended statistics are made of.
struct ExtRecord {
  Partial base;
  ExtPartial ext;
  int64_t hist[kHistBins];
};

static_assert(sizeof(Partial) == 14 * 8, "Partial must be 8-byte words");
static_assert(sizeof(ExtPartial) == 7 * 8, "ExtPartial must be 8-byte words");

constexpr double kMaxFinite = 1.7976931348623157e308;

FS_FN double fs_inf() { return HUGE_VAL; }
FS_FN double fs_nan() { return NAN; }
FS_FN bool fs_finite(double x) { return x - x == 0.0; }  // false for NaN and ±inf

FS_FN Partial partial_empty() {
  Partial p;
  p.numel = p.n_nan = p.n_inf = p.n_zero = p.n_finite = p.n_dormant = 0;
  p.sum = p.l1 = p.sumsq = p.shift = p.mean = p.m2 = 0.0;
  p.min = fs_inf();
  p.max = -fs_inf();
  return p;
}

FS_FN ExtPartial ext_empty() {
  ExtPartial e;
  e.m3 = e.m4 = 0.0;
  e.min_abs = fs_inf();
  for (int f = 0; f < kNumFormats; ++f) e.n_over[f] = 0;
  return e;
}

// mean_b - mean_a for two non-empty partials, each mean relative to its own shift.
// Same shift (tiles of one chunk): exact. Different shifts: b is rebased onto a's;
// shifts of one tensor are near each other, so (b.shift - a.shift) is exact too. With
// shifts near ±1.8e308 the difference can overflow: then it is taken in half units,
// which is what keeps the mean of [1e308, -1e308] at 0 instead of inf or NaN.
FS_FN double shifted_delta(const Partial& a, const Partial& b, bool& halved) {
  halved = false;
  if (a.shift == b.shift) return b.mean - a.mean;
  const double d = (b.shift - a.shift) + b.mean - a.mean;
  if (fs_finite(d)) return d;
  halved = true;
  return (b.shift * 0.5 - a.shift * 0.5) + (b.mean * 0.5 - a.mean * 0.5);
}

// a <- a ∪ b for the counts, sums and extremes (everything but the moments).
FS_FN void merge_plain(Partial& a, const Partial& b) {
  a.sum += b.sum;
  a.l1 += b.l1;
  a.sumsq += b.sumsq;
  a.min = b.min < a.min ? b.min : a.min;
  a.max = b.max > a.max ? b.max : a.max;
}

FS_FN void merge_counts(Partial& a, const Partial& b) {
  a.numel += b.numel;
  a.n_nan += b.n_nan;
  a.n_inf += b.n_inf;
  a.n_zero += b.n_zero;
  a.n_dormant += b.n_dormant;
}

FS_FN void copy_finite_part(Partial& a, const Partial& b) {
  a.n_finite = b.n_finite;
  a.sum = b.sum;
  a.l1 = b.l1;
  a.sumsq = b.sumsq;
  a.shift = b.shift;
  a.mean = b.mean;
  a.m2 = b.m2;
  a.min = b.min;
  a.max = b.max;
}

// a <- a ∪ b. Chan et al.: delta = mean_b - mean_a, M2 = M2_a + M2_b + delta² n_a n_b / n.
// Merge order is fixed by the callers, so the result is bit-identical run to run.
FS_FN void partial_merge(Partial& a, const Partial& b) {
  merge_counts(a, b);
  if (b.n_finite == 0) return;
  if (a.n_finite == 0) {
    copy_finite_part(a, b);
    return;
  }
  const int64_t n = a.n_finite + b.n_finite;
  bool halved;
  const double delta = shifted_delta(a, b, halved);
  const double frac_b = static_cast<double>(b.n_finite) / static_cast<double>(n);
  if (!halved) {
    a.mean += delta * frac_b;
    a.m2 += b.m2 + delta * delta * static_cast<double>(a.n_finite) * frac_b;
  } else {
    a.mean += 2.0 * (delta * frac_b);
    a.m2 += b.m2 + 4.0 * (delta * delta * static_cast<double>(a.n_finite) * frac_b);
  }
  merge_plain(a, b);
  a.n_finite = n;
}

// The same union with the extended state (Pébay, "Formulas for robust, one-pass
// parallel computation of covariances and arbitrary-order statistical moments", 2008):
//   M3 = M3a + M3b + δ³ na nb (na - nb)/n² + 3δ (na M2b - nb M2a)/n
//   M4 = M4a + M4b + δ⁴ na nb (na² - na nb + nb²)/n³ + 6δ² (na² M2b + nb² M2a)/n²
//        + 4δ (na M3b - nb M3a)/n
// written with fa = na/n, fb = nb/n so that no term is formed from huge products.
FS_FN void ext_merge(Partial& a, ExtPartial& ae, const Partial& b, const ExtPartial& be) {
  for (int f = 0; f < kNumFormats; ++f) ae.n_over[f] += be.n_over[f];
  ae.min_abs = be.min_abs < ae.min_abs ? be.min_abs : ae.min_abs;
  if (b.n_finite == 0) {
    partial_merge(a, b);
    return;
  }
  if (a.n_finite == 0) {
    ae.m3 = be.m3;
    ae.m4 = be.m4;
    partial_merge(a, b);
    return;
  }
  bool halved;
  double delta = shifted_delta(a, b, halved);
  if (halved) delta *= 2.0;  // may be ±inf: the moments then overflow, as they must
  const double na = static_cast<double>(a.n_finite);
  const double nb = static_cast<double>(b.n_finite);
  const double n = na + nb;
  const double fa = na / n, fb = nb / n;
  const double d2 = delta * delta;
  const double m3 = ae.m3 + be.m3 + d2 * delta * na * fb * (fa - fb) +
                    3.0 * delta * (fa * b.m2 - fb * a.m2);
  const double m4 = ae.m4 + be.m4 + d2 * d2 * na * fb * (fa * fa - fa * fb + fb * fb) +
                    6.0 * d2 * (fa * fa * b.m2 + fb * fb * a.m2) +
                    4.0 * delta * (fa * be.m3 - fb * ae.m3);
  ae.m3 = m3;
  ae.m4 = m4;
  partial_merge(a, b);
}

FS_FN void record_merge(ExtRecord& a, const ExtRecord& b) {
  ext_merge(a.base, a.ext, b.base, b.ext);
  for (int i = 0; i < kHistBins; ++i) a.hist[i] += b.hist[i];
}

FS_FN void record_empty(ExtRecord& r) {
  r.base = partial_empty();
  r.ext = ext_empty();
  for (int i = 0; i < kHistBins; ++i) r.hist[i] = 0;
}

// ---- element loads: every supported dtype widened to float or double ------------

FS_FN float fs_bits_to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

FS_FN uint32_t fs_float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t bits;
  __builtin_memcpy(&bits, &f, sizeof bits);
  return bits;
#endif
}

FS_FN uint64_t fs_double_to_bits(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t bits;
  __builtin_memcpy(&bits, &d, sizeof bits);
  return bits;
#endif
}

// bfloat16 is the upper half of a float32: exact, and a shift the compiler vectorizes.
FS_FN float load_bf16(uint16_t h) { return fs_bits_to_float(static_cast<uint32_t>(h) << 16); }

// IEEE half -> float without branches (vectorizes; the CPU's AVX2 copy uses F16C).
// Normal halves: rebias the exponent. Subnormal halves: mantissa * 2^-24, built from
// an integer so that no float subnormal is ever an input (a thread with DAZ set, e.g.
// after torch.set_flush_denormal(True), would read it as zero). Inf/NaN: exponent all
// ones, mantissa kept (NaN stays NaN).
FS_FN float load_f16(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t em = static_cast<uint32_t>(h & 0x7fffu);
  const uint32_t normal = (em << 13) + (static_cast<uint32_t>(127 - 15) << 23);
  const uint32_t special = 0x7f800000u | (em << 13);
  const float subnormal = static_cast<float>(static_cast<int32_t>(em)) * 5.9604644775390625e-8f;
  const uint32_t sub_bits = fs_float_to_bits(subnormal);
  const uint32_t bits = em >= 0x7c00u ? special : (em >= 0x0400u ? normal : sub_bits);
  return fs_bits_to_float(bits | sign);
}

// float8_e4m3fn -> float, exact: 4 exponent bits (bias 7), 3 mantissa bits, no
// infinities, S.1111.111 is NaN. Subnormals are mantissa * 2^-9, built from an integer
// as for halves.
FS_FN float load_e4m3(uint8_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x80u) << 24;
  const uint32_t em = static_cast<uint32_t>(h & 0x7fu);
  const uint32_t normal = (em << 20) + (static_cast<uint32_t>(127 - 7) << 23);
  const float subnormal = static_cast<float>(static_cast<int32_t>(em)) * 0.001953125f;
  const uint32_t bits = em == 0x7fu ? 0x7fc00000u : (em >= 0x08u ? normal : fs_float_to_bits(subnormal));
  return fs_bits_to_float(bits | sign);
}

// float8_e5m2 -> float, exact: the upper byte of an IEEE half.
FS_FN float load_e5m2(uint8_t h) { return load_f16(static_cast<uint16_t>(static_cast<uint16_t>(h) << 8)); }

// Elem<D>::T is the stored type; N the narrowest type that holds every value exactly
// (float for all inputs of 32 bits or fewer). Comparisons (min, max, zero) run in N —
// for float32 that is 8 lanes per AVX2 op instead of 4 — and sums in double.
template <int32_t D>
struct Elem;
template <>
struct Elem<kFloat32> {
  using T = float;
  using N = float;
  FS_FN N load(T v) { return v; }
};
template <>
struct Elem<kFloat64> {
  using T = double;
  using N = double;
  FS_FN N load(T v) { return v; }
};
template <>
struct Elem<kFloat16> {
  using T = uint16_t;
  using N = float;
  FS_FN N load(T v) { return load_f16(v); }
};
template <>
struct Elem<kBFloat16> {
  using T = uint16_t;
  using N = float;
  FS_FN N load(T v) { return load_bf16(v); }
};
template <>
struct Elem<kFloat8E4M3> {
  using T = uint8_t;
  using N = float;
  FS_FN N load(T v) { return load_e4m3(v); }
};
template <>
struct Elem<kFloat8E5M2> {
  using T = uint8_t;
  using N = float;
  FS_FN N load(T v) { return load_e5m2(v); }
};

// ---- per-element pieces of the extended pass ---------------------------------------

// Histogram bin of a finite x (see kHistBins): read off the exponent field of the
// double, which holds every float32 value (subnormals included) as a normal number.
FS_FN int hist_bin(double x) {
  if (x == 0.0) return 0;
  const int e = static_cast<int>((fs_double_to_bits(x) >> 52) & 0x7ffu) - 1023;
  if (e < kHistMinExp) return kHistBinBelow;  // float64 subnormals too (e = -1023)
  if (e > kHistMaxExp) return kHistBinAbove;
  return kHistBinOffset + e;
}

// |x| of a finite x beyond each format's largest finite value: a 0/1 per format.
FS_FN void count_over(double ax, int64_t* n_over) {
  for (int f = 0; f < kNumFormats; ++f) n_over[f] += ax > format_max_finite(f) ? 1 : 0;
}

// ---- statistics of one small tile --------------------------------------------

// The shift a tile with mean estimate m0 takes: the accumulator's (NaN when it has
// none yet), unless the tile's mean relative to it would overflow (data at both ends
// of the float64 range); the merge then rebases the two shifts in half units.
FS_FN double shift_near(double shift, double m0) {
  return shift == shift && fs_finite(m0 - shift) ? shift : m0;
}

// Counts one value into t (all but numel): NaN, ±Inf, or a finite value's count, sum,
// l1, zero count and extremes. Returns whether x is finite.
FS_FN bool count_one(Partial& t, double x) {
  if (x != x) {
    ++t.n_nan;
    return false;
  }
  if (fabs(x) > kMaxFinite) {
    ++t.n_inf;
    return false;
  }
  ++t.n_finite;
  t.sum += x;
  t.l1 += fabs(x);
  t.n_zero += x == 0.0 ? 1 : 0;
  t.min = x < t.min ? x : t.min;
  t.max = x > t.max ? x : t.max;
  return true;
}

// The exact path, for any tile: NaN and ±Inf counted, finite values taken two-pass
// (one sweep for counts/sum/l1/extremes, a second for deviations from their mean),
// and data near ±1.8e308 taken in scaled units so that nothing overflows into a NaN.
// Scalar code: it runs only for tiles holding NaN/Inf or huge values.
template <int32_t D, bool kExt>
FS_FN void tile_stats_slow(const typename Elem<D>::T* v, int64_t n, double shift, Partial& t,
                           ExtPartial* te, int64_t* hist) {
  t = partial_empty();
  t.numel = n;
  if (kExt) *te = ext_empty();
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(Elem<D>::load(v[i]));
    if (count_one(t, x) && kExt) {
      const double ax = fabs(x);
      if (ax != 0.0 && ax < te->min_abs) te->min_abs = ax;
      count_over(ax, te->n_over);
      ++hist[hist_bin(x)];
    }
  }
  if (t.n_finite == 0) return;
  const double nd = static_cast<double>(t.n_finite);
  const double abs_max = fabs(t.min) > fabs(t.max) ? fabs(t.min) : fabs(t.max);
  // Deviations are taken in units of 1/scale, a power of two small enough that no
  // partial sum of n deviations (each at most 2 abs_max) can overflow; exact, and 1
  // for any data below ~1e300.
  double scale = 1.0;
  while (abs_max * scale > kMaxFinite / (2.0 * nd)) scale *= 0.5;
  // m0 = K + Σ(x - K)/n about the first finite value K, in scaled units: constant data
  // gives K exactly (Σx/n would not, and at 1e308 its rounding alone makes deviations
  // whose squares overflow), and nothing overflows on the way.
  double k = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(Elem<D>::load(v[i]));
    if (x == x && fabs(x) <= kMaxFinite) {
      k = x;
      break;
    }
  }
  double sk = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(Elem<D>::load(v[i]));
    if (x == x && fabs(x) <= kMaxFinite) sk += x * scale - k * scale;
  }
  const double m0 = (k * scale + sk / nd) / scale;
  double sd = 0.0, m2 = 0.0, m3 = 0.0, m4 = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(Elem<D>::load(v[i]));
    if (x == x && fabs(x) <= kMaxFinite) {
      const double d = x * scale - m0 * scale;
      sd += d;
      m2 += d * d;
      if (kExt) {
        m3 += d * d * d;
        m4 += (d * d) * (d * d);
      }
    }
  }
  const double c = sd / nd;  // corrects the rounding of m0 (in scaled units)
  const double inv2 = 1.0 / (scale * scale);
  t.shift = shift_near(shift, m0);
  t.mean = (m0 - t.shift) + c / scale;
  // Σd² beyond range: M2 is too (the correction is smaller than Σd²); inf - inf is not.
  t.m2 = fs_finite(m2) ? (m2 - sd * c) * inv2 : m2;
  t.sumsq = t.m2 + nd * (m0 + c / scale) * (m0 + c / scale);
  if (kExt) {
    te->m3 = (m3 - 3.0 * c * m2 + 2.0 * nd * c * c * c) * (inv2 / scale);
    te->m4 = (m4 - 4.0 * c * m3 + 6.0 * c * c * m2 - 3.0 * nd * c * c * c * c) * (inv2 * inv2);
  }
}

// A finite tile's state from its two-pass sums: n elements, their sum s, l1 a, z zeros,
// extremes lo/hi, and Σd, Σd² about m0 = s/n (the correction c = Σd/n, returned,
// repairs the rounding of m0).
FS_FN double two_pass_finish(Partial& t, int64_t n, double shift, double m0, double s, double a,
                             int64_t z, double lo, double hi, double sd, double m) {
  const double nd = static_cast<double>(n);
  t.numel = n;
  t.n_nan = t.n_inf = t.n_dormant = 0;
  t.n_zero = z;
  t.n_finite = n;
  t.sum = s;
  t.l1 = a;
  t.shift = shift_near(shift, m0);
  const double c = sd / nd;
  t.mean = (m0 - t.shift) + c;
  t.m2 = m - sd * c;
  t.sumsq = t.m2 + s * s / nd;  // Σx² = M2 + n·mean²: non-negative terms, no cancellation
  t.min = lo;
  t.max = hi;
  return c;
}

// The central 3rd/4th moment sums from Σd², Σd³, Σd⁴ about m0 and the correction c.
FS_FN void two_pass_finish_ext(ExtPartial& te, double nd, double c, double m, double m3,
                               double m4) {
  te.m3 = m3 - 3.0 * c * m + 2.0 * nd * c * c * c;
  te.m4 = m4 - 4.0 * c * m3 + 6.0 * c * c * m - 3.0 * nd * c * c * c * c;
}

// Two-pass tile (all values finite, checked): one sweep for sum/l1/min/max/zeros,
// then the corrected Σ(x - m0)^k over the same tile, which is still in L1, so the
// second sweep costs no memory traffic. Exact whatever the data; tile_stats_fast falls
// back to it when its shift was a poor guess, and the extended pass always uses it.
// Returns false when a NaN/Inf was present or a sum overflowed (the caller then uses
// tile_stats_slow on the same tile).
template <int32_t D, bool kExt>
FS_FN bool tile_stats_two_pass(const typename Elem<D>::T* v, int64_t n, double shift, Partial& t,
                               ExtPartial* te, int64_t* hist) {
  using N = typename Elem<D>::N;
  double s = 0.0, a = 0.0;
  N lo = static_cast<N>(fs_inf()), hi = static_cast<N>(-fs_inf());
  int32_t z = 0;  // a tile is at most a few thousand elements
  FS_SIMD_REDUCE(reduction(+ : s, a, z) reduction(min : lo) reduction(max : hi))
  for (int64_t i = 0; i < n; ++i) {
    const N xn = Elem<D>::load(v[i]);
    const double x = static_cast<double>(xn);
    s += x;
    a += fabs(x);
    z += xn == N(0) ? 1 : 0;
    lo = xn < lo ? xn : lo;
    hi = xn > hi ? xn : hi;
  }
  if (!(a <= kMaxFinite)) return false;  // NaN or Inf seen, or Σ|x| overflowed
  const double nd = static_cast<double>(n);
  const double m0 = s / nd;
  // Second sweep: corrected two-pass. Σd repairs the rounding of s in m0.
  double sd = 0.0, m = 0.0, m3 = 0.0, m4 = 0.0;
  if (kExt) {
    FS_SIMD_REDUCE(reduction(+ : sd, m, m3, m4))
    for (int64_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(Elem<D>::load(v[i])) - m0;
      const double d2 = d * d;
      sd += d;
      m += d2;
      m3 += d2 * d;
      m4 += d2 * d2;
    }
  } else {
    FS_SIMD_REDUCE(reduction(+ : sd, m))
    for (int64_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(Elem<D>::load(v[i])) - m0;
      sd += d;
      m += d * d;
    }
  }
  if (!(m <= kMaxFinite)) return false;  // Σd² overflowed: the slow path scales
  const double c = two_pass_finish(t, n, shift, m0, s, a, z, lo, hi, sd, m);
  if (kExt) {
    two_pass_finish_ext(*te, nd, c, m, m3, m4);
    // First-sweep extras of the extended pass, kept out of the default loop: the
    // smallest nonzero |x| and the overflow counts vectorize; the histogram is a
    // scatter, done from L1.
    N min_abs = static_cast<N>(fs_inf());
    int32_t o0 = 0, o1 = 0, o2 = 0, o3 = 0;
    const N max0 = static_cast<N>(format_max_finite(0)), max1 = static_cast<N>(format_max_finite(1));
    const N max2 = static_cast<N>(format_max_finite(2)), max3 = static_cast<N>(format_max_finite(3));
    FS_SIMD_REDUCE(reduction(min : min_abs) reduction(+ : o0, o1, o2, o3))
    for (int64_t i = 0; i < n; ++i) {
      const N xn = Elem<D>::load(v[i]);
      const N ax = xn < N(0) ? -xn : xn;
      min_abs = (ax != N(0) && ax < min_abs) ? ax : min_abs;
      o0 += ax > max0 ? 1 : 0;
      o1 += ax > max1 ? 1 : 0;
      o2 += ax > max2 ? 1 : 0;
      o3 += ax > max3 ? 1 : 0;
    }
    te->min_abs = static_cast<double>(min_abs);
    te->n_over[0] = o0;
    te->n_over[1] = o1;
    te->n_over[2] = o2;
    te->n_over[3] = o3;
    for (int64_t i = 0; i < n; ++i) ++hist[hist_bin(static_cast<double>(Elem<D>::load(v[i])))];
  }
  return true;
}

// How much of M2 the one-sweep formula M2 = Σd² - (Σd)²/n may cancel before a tile is
// redone two-pass: `between` = (Σd)²/n must stay under this fraction of Σd². On the
// CPU a tile is in L1, so redoing it is cheap and the bound is strict (at most one bit
// lost); the GPU, which would re-read memory, uses a looser bound (csrc/cuda).
constexpr double kTileMaxCancel = 0.5;

// Fast path, one sweep: deviations d = x - K from a shift K near the data (the
// accumulator's shift, or the tile's first value) give Σd and Σd², hence the tile's
// mean and M2 = Σd² - (Σd)²/n; l1/min/max/zeros come from the same sweep. That
// subtraction cancels only when the tile's mean is far from K compared with its
// spread: if (Σd)²/n > Σd²/2 (at most one bit lost) the tile is redone two-pass from
// L1. Elements are widened to double as they are read.
// Returns false when a NaN/Inf was present (Σ|x| is then not finite) or a sum
// overflowed; the caller then uses tile_stats_slow on the same tile.
//
// Measured on Zen 3 (float32, in cache): the two-pass tile ran at ~2.4 G elements/s
// per core, limited by its 4 vcvtps2pd and 10 FP adds per 8 elements; this sweep has
// 2 conversions, 6 adds and 2 FMAs.
//
// `omp simd reduction` lets the compiler keep accumulators per vector lane (GCC does
// not vectorize a ternary min/max or a double sum without it); FS_SIMDLEN lanes
// give several independent add chains, so the loop is not bound by add latency.
// The lane count, hence the summation order, is fixed per compiled copy, so results
// are bit-identical at any thread count; the AVX2 and SSE2 copies may differ in the
// last bit (FMA, lane order).
template <int32_t D>
FS_FN bool tile_stats_fast(const typename Elem<D>::T* v, int64_t n, double shift, Partial& t) {
  using N = typename Elem<D>::N;
  const double k = shift == shift ? shift : static_cast<double>(Elem<D>::load(v[0]));
  double sd = 0.0, sq = 0.0, a = 0.0;
  N lo = static_cast<N>(fs_inf()), hi = static_cast<N>(-fs_inf());
  int32_t z = 0;  // a tile is at most a few thousand elements
  FS_SIMD_REDUCE(reduction(+ : sd, sq, a, z) reduction(min : lo) reduction(max : hi))
  for (int64_t i = 0; i < n; ++i) {
    const N xn = Elem<D>::load(v[i]);
    const double x = static_cast<double>(xn);
    const double d = x - k;
    sd += d;
    sq = FS_FMA(d, d, sq);
    a += fabs(x);
    z += xn == N(0) ? 1 : 0;
    lo = xn < lo ? xn : lo;
    hi = xn > hi ? xn : hi;
  }
  if (!(a <= kMaxFinite) || !(k <= kMaxFinite && k >= -kMaxFinite)) return false;
  const double nd = static_cast<double>(n);
  const double mean_d = sd / nd;
  const double between = sd * mean_d;  // n·mean_d²
  // sq <= kMaxFinite: with |x| near 1.8e308, d = x - K overflows and inf <= inf would
  // pass the test below; such tiles go the two-pass (then the slow, scaled) way.
  if (!(between <= kTileMaxCancel * sq) || !(sq <= kMaxFinite)) {
    return tile_stats_two_pass<D, false>(v, n, shift, t, nullptr, nullptr);
  }
  t.numel = n;
  t.n_nan = t.n_inf = t.n_dormant = 0;
  t.n_zero = z;
  t.n_finite = n;
  t.sum = sd + nd * k;
  t.l1 = a;
  t.shift = k;
  t.mean = mean_d;
  t.m2 = sq - between;
  const double mean = k + mean_d;
  t.sumsq = t.m2 + nd * mean * mean;  // Σx² = M2 + n·mean²: non-negative terms
  t.min = static_cast<double>(lo);
  t.max = static_cast<double>(hi);
  return true;
}

// `shift`: the accumulator's shift when it already holds finite values, else NaN.
// kExt: also the extended state and the histogram (hist: kHistBins counters, added to).
template <int32_t D, bool kExt>
FS_FN void tile_stats(const typename Elem<D>::T* v, int64_t n, double shift, Partial& t,
                      ExtPartial* te, int64_t* hist) {
  if (kExt) {
    if (!tile_stats_two_pass<D, true>(v, n, shift, t, te, hist))
      tile_stats_slow<D, true>(v, n, shift, t, te, hist);
  } else {
    if (!tile_stats_fast<D>(v, n, shift, t)) tile_stats_slow<D, false>(v, n, shift, t, nullptr, nullptr);
  }
}

// The shift a tile merged into `acc` should use.
FS_FN double shift_for(const Partial& acc) { return acc.n_finite > 0 ? acc.shift : fs_nan(); }

// ---- the output row ------------------------------------------------------------

FS_FN void partial_finalize(const Partial& p, double* row) {
  const double nf = static_cast<double>(p.n_finite);
  const bool any = p.n_finite > 0;
  const double mean = p.shift + p.mean;
  row[kNumel] = static_cast<double>(p.numel);
  row[kNNan] = static_cast<double>(p.n_nan);
  row[kNInf] = static_cast<double>(p.n_inf);
  row[kNZero] = static_cast<double>(p.n_zero);
  row[kNFinite] = nf;
  // A sum whose running total overflowed (+inf then -inf: NaN) is n·mean: ±inf when
  // the true sum is beyond range, the right value otherwise.
  row[kSum] = fs_finite(p.sum) || !any ? p.sum : nf * mean;
  row[kMean] = any ? mean : fs_nan();
  row[kVar] = p.n_finite >= 2 ? p.m2 / (nf - 1.0) : fs_nan();
  row[kVarPop] = any ? p.m2 / nf : fs_nan();
  row[kStd] = p.n_finite >= 2 ? sqrt(p.m2 / (nf - 1.0)) : fs_nan();
  row[kMin] = any ? p.min : fs_nan();
  row[kMax] = any ? p.max : fs_nan();
  row[kAbsMax] = any ? (fabs(p.min) > fabs(p.max) ? fabs(p.min) : fabs(p.max)) : fs_nan();
  row[kL1] = p.l1;
  row[kNorm] = sqrt(p.sumsq);
  row[kNDormantRows] = static_cast<double>(p.n_dormant);
}

// The extended columns of a row (row has kNumExtColumns entries; the base ones are
// written by partial_finalize). hist: the record's kHistBins counts.
FS_FN void ext_finalize(const Partial& p, const ExtPartial& e, const int64_t* hist, double* row) {
  const double nf = static_cast<double>(p.n_finite);
  const bool any = p.n_finite > 0;
  // Population excess kurtosis n·M4/M2² - 3; NaN below 2 finite values or when M2 = 0.
  row[kKurtosis] = (p.n_finite >= 2 && p.m2 > 0.0) ? nf * e.m4 / (p.m2 * p.m2) - 3.0 : fs_nan();
  const bool any_nonzero = e.min_abs <= kMaxFinite;
  row[kMinAbsNonzero] = any_nonzero ? e.min_abs : fs_nan();
  const double abs_max = fabs(p.min) > fabs(p.max) ? fabs(p.min) : fabs(p.max);
  // log2(abs_max / min_abs) as a difference: the ratio itself can overflow.
  row[kDynamicRangeLog2] = any_nonzero ? log2(abs_max) - log2(e.min_abs) : fs_nan();
  for (int f = 0; f < kNumFormats; ++f) {
    int64_t under = hist[kHistBinBelow];
    const int top = kHistBinOffset + format_min_normal_log2(f);  // first normal bin
    for (int b = kHistBinOffset + kHistMinExp; b < top; ++b) under += hist[b];
    row[kUnderflowBf16 + 2 * f] = any ? static_cast<double>(under) / nf : fs_nan();
    row[kOverflowBf16 + 2 * f] = any ? static_cast<double>(e.n_over[f]) / nf : fs_nan();
  }
}

}  // namespace fusedstats
