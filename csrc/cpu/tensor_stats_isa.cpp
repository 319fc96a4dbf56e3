// The chunk loop of the CPU kernel. CMake compiles this file twice: with FS_ISA=baseline
// (the wheel's portable flags) and, on x86-64, with FS_ISA=avx2 (-mavx2 -mfma -mf16c);
// tensor_stats_cpu.cpp picks one at run time, once per process. Each copy is
// deterministic at any thread count; the two may differ in the last bit (FMA, lanes).
//
// Vectorization, checked with `objdump -d` and -fopt-info-vec on the GCC 12 -O3 build
// of the avx2 copy (tile_stats_fast<kFloat32>, the loop every 16/32-bit input runs),
// per 8 elements: vmovups; vminps, vmaxps, vcmpeqps + vpsubd (min, max, zero count on
// the 8 floats); vextractf128 + vcvtps2pd x2; vsubpd x2 (d = x - shift); vaddpd x2
// (Σd); vfmadd231pd x2 (Σd²); vandpd + vaddpd x2 (l1). No scalar code in the loop.
// Without `omp simd reduction` GCC left the min/max and the double sums scalar
// (vminsd, vaddsd). Measured in cache on this 2-core AMD EPYC (Zen 3): 14 GB/s of
// float32 per core. float16 (F16C vcvtph2ps), bfloat16 (vpmovzxwd + vpslld) and the
// float8 formats are widened to a float tile first; through the generic load float16
// and bfloat16 ran at 0.14 and 2.2 GB/s instead of ~5-6. The baseline copy has the
// same loops in SSE2 registers.
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__F16C__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#include "cpu_kernels.h"
#include "fusedstats/denormals.h"
#include "fusedstats/plan.h"
#include "fusedstats/stats.h"

#ifndef FS_ISA
#error "FS_ISA must name the instruction-set namespace"
#endif

namespace fusedstats {
namespace cpu {
namespace FS_ISA {

constexpr int64_t kTile = kTileElems;

// Inputs narrower than float32 are widened to a float tile first (exact): the stats
// loop then runs the float32 code, which vectorizes fully. Measured on this machine,
// reading bf16 through the generic load ran at half the element rate of float32.
template <int32_t D>
static void widen_to_floats(const typename Elem<D>::T* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Elem<D>::load(src[i]);  // bf16: vpmovzxwd + vpslld
}

// With F16C: one vcvtph2ps per 8 halves, which the compiler does not emit from the
// portable bit-twiddling load.
template <>
void widen_to_floats<kFloat16>(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) dst[i] = load_f16(src[i]);
}

// Accumulator of one span: the base state, and for the extended pass its extras.
template <bool kExt>
struct Acc;
template <>
struct Acc<false> {
  Partial p = partial_empty();
  void add_tile(const Partial& t, const ExtPartial*) { partial_merge(p, t); }
  void add(const Acc& o) { partial_merge(p, o.p); }
  ExtPartial* ext() { return nullptr; }
  int64_t* hist() { return nullptr; }
};
template <>
struct Acc<true> {
  ExtRecord r;
  Partial& p = r.base;
  Acc() { record_empty(r); }
  Acc(const Acc& o) : r(o.r), p(r.base) {}
  Acc& operator=(const Acc& o) {
    r = o.r;
    return *this;
  }
  void add_tile(const Partial& t, const ExtPartial* te) { ext_merge(r.base, r.ext, t, *te); }
  void add(const Acc& o) { record_merge(r, o.r); }
  ExtPartial* ext() { return &r.ext; }
  int64_t* hist() { return r.hist; }
};

// ---- the extended pass, the CPU way ---------------------------------------------
//
// stats.h's generic extended tile takes four sweeps and a branchy histogram bin per
// element; measured on this machine that made the extended pass 5-9x the default one.
// Here, per tile (in L1): one vectorized sweep for the sums, extremes and the smallest
// nonzero |x|; the overflow counts only when the tile reaches the smallest format
// maximum (448: most tiles do not); one sweep for the central powers; then a scalar
// sweep that reads each element's bin off its exponent bits and counts it into one of
// 4 interleaved histograms (consecutive increments of one bin would otherwise wait on
// each other's store). The bin of a float is its exponent field + 24, which puts
// zeros and subnormals in bin 24 too: zeros are moved by their count, subnormals (only
// when the smallest |x| says there are some) by a fix-up sweep.
// Measured on this 2-core Zen 3 (20M float32, one thread): 18 -> ~13 ms.

constexpr int kHistCopies = 4;
// A float's exponent field f (1..254 for normals) is ⌊log2|x|⌋ + 127: bin f + 24.
constexpr int kFloatFieldToBin = kHistBinOffset - 127;
constexpr float kSmallestNormal = 1.17549435e-38f;  // 2^-126

static inline int32_t exponent_bin(double x) {
  const int64_t field = static_cast<int64_t>((fs_double_to_bits(x) >> 52) & 0x7ffu);
  const int64_t bin = field - 1023 + kHistBinOffset;
  const int64_t clamped =
      bin < kHistBinBelow ? kHistBinBelow : (bin > kHistBinAbove ? kHistBinAbove : bin);
  return static_cast<int32_t>(x == 0.0 ? 0 : (field ? clamped : kHistBinBelow));
}

// Counts the bins of a tile of floats: zeros (z of them) and subnormals land in bin
// kFloatFieldToBin and are moved to theirs after.
static void count_bins(const float* v, int64_t n, int32_t z, float min_abs,
                       int32_t (*hist)[kHistBins]) {
  int64_t i = 0;
  for (; i + kHistCopies <= n; i += kHistCopies) {
    for (int c = 0; c < kHistCopies; ++c)
      ++hist[c][((fs_float_to_bits(v[i + c]) >> 23) & 0xffu) + kFloatFieldToBin];
  }
  for (; i < n; ++i) ++hist[0][((fs_float_to_bits(v[i]) >> 23) & 0xffu) + kFloatFieldToBin];
  hist[0][kFloatFieldToBin] -= z;
  hist[0][0] += z;
  if (min_abs < kSmallestNormal) {
    for (int64_t k = 0; k < n; ++k) {
      const float ax = v[k] < 0.0f ? -v[k] : v[k];
      if (ax != 0.0f && ax < kSmallestNormal) {
        --hist[0][kFloatFieldToBin];
        ++hist[0][hist_bin(static_cast<double>(v[k]))];
      }
    }
  }
}

static void count_bins(const double* v, int64_t n, int32_t, double, int32_t (*hist)[kHistBins]) {
  int64_t i = 0;
  for (; i + kHistCopies <= n; i += kHistCopies) {
    for (int c = 0; c < kHistCopies; ++c) ++hist[c][exponent_bin(v[i + c])];
  }
  for (; i < n; ++i) ++hist[0][exponent_bin(v[i])];
}

template <class N>
static bool ext_tile(const N* v, int64_t n, double shift, Partial& t, ExtPartial& te,
                     int32_t (*hist)[kHistBins]) {
  double s = 0.0, a = 0.0;
  N lo = static_cast<N>(fs_inf()), hi = static_cast<N>(-fs_inf());
  N min_abs = static_cast<N>(fs_inf());
  int32_t z = 0;
  FS_SIMD_REDUCE(reduction(+ : s, a, z) reduction(min : lo, min_abs) reduction(max : hi))
  for (int64_t i = 0; i < n; ++i) {
    const N xn = v[i];
    const double x = static_cast<double>(xn);
    const N ax = xn < N(0) ? -xn : xn;
    s += x;
    a += fabs(x);
    z += xn == N(0) ? 1 : 0;
    lo = xn < lo ? xn : lo;
    hi = xn > hi ? xn : hi;
    min_abs = (ax != N(0) && ax < min_abs) ? ax : min_abs;
  }
  if (!(a <= kMaxFinite)) return false;  // NaN/Inf, or Σ|x| overflowed: the slow path
  for (int f = 0; f < kNumFormats; ++f) te.n_over[f] = 0;
  const double abs_max = fabs(static_cast<double>(lo)) > fabs(static_cast<double>(hi))
                             ? fabs(static_cast<double>(lo))
                             : fabs(static_cast<double>(hi));
  if (abs_max > format_max_finite(2)) {  // 448, the smallest of the four maxima
    int32_t o0 = 0, o1 = 0, o2 = 0, o3 = 0;
    const N max0 = static_cast<N>(format_max_finite(0)), max1 = static_cast<N>(format_max_finite(1));
    const N max2 = static_cast<N>(format_max_finite(2)), max3 = static_cast<N>(format_max_finite(3));
    FS_SIMD_REDUCE(reduction(+ : o0, o1, o2, o3))
    for (int64_t i = 0; i < n; ++i) {
      const N ax = v[i] < N(0) ? -v[i] : v[i];
      o0 += ax > max0 ? 1 : 0;
      o1 += ax > max1 ? 1 : 0;
      o2 += ax > max2 ? 1 : 0;
      o3 += ax > max3 ? 1 : 0;
    }
    te.n_over[0] = o0;
    te.n_over[1] = o1;
    te.n_over[2] = o2;
    te.n_over[3] = o3;
  }
  const double nd = static_cast<double>(n);
  const double m0 = s / nd;
  double sd = 0.0, m = 0.0, m3 = 0.0, m4 = 0.0;
  FS_SIMD_REDUCE(reduction(+ : sd, m, m3, m4))
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(v[i]) - m0;
    const double d2 = d * d;
    sd += d;
    m += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
  }
  if (!(m <= kMaxFinite)) return false;
  count_bins(v, n, z, min_abs, hist);
  const double c = two_pass_finish(t, n, shift, m0, s, a, z, static_cast<double>(lo),
                                   static_cast<double>(hi), sd, m);
  two_pass_finish_ext(te, nd, c, m, m3, m4);
  te.min_abs = static_cast<double>(min_abs);
  return true;
}

// The histogram of one span, counted in int32 copies (a span is at most a chunk,
// far below 2^31 elements) and added to the record once.
struct ExtSpanHist {
  int32_t copies[kHistCopies][kHistBins];
  ExtSpanHist() { std::memset(copies, 0, sizeof copies); }
  void flush_into(int64_t* hist) const {
    for (int b = 0; b < kHistBins; ++b)
      hist[b] += static_cast<int64_t>(copies[0][b]) + copies[1][b] + copies[2][b] + copies[3][b];
  }
};

template <class N>
static void ext_tile_or_slow(const N* v, int64_t n, double shift, Partial& t, ExtPartial& te,
                             ExtSpanHist& span_hist, int64_t* record_hist) {
  if (!ext_tile<N>(v, n, shift, t, te, span_hist.copies)) {
    constexpr int32_t kD = std::is_same<N, double>::value ? kFloat64 : kFloat32;
    tile_stats_slow<kD, true>(v, n, shift, t, &te, record_hist);
  }
}

// f(values, n, offset) for each tile of p[0, len): narrow types widened to a float tile
// first (exact), which the float32 loops then read; float32 and float64 in place.
template <int32_t D, class F>
static void for_each_tile(const typename Elem<D>::T* p, int64_t len, F&& f) {
  constexpr bool kWiden = !std::is_same<typename Elem<D>::T, typename Elem<D>::N>::value;
  for (int64_t off = 0; off < len; off += kTile) {
    const int64_t n = len - off < kTile ? len - off : kTile;
    if constexpr (kWiden) {
      alignas(64) float widened[kTile];
      widen_to_floats<D>(p + off, n, widened);
      f(static_cast<const float*>(widened), n, off);
    } else {
      f(p + off, n, off);
    }
  }
}

template <int32_t D, bool kExt>
static void span_stats(const typename Elem<D>::T* p, int64_t len, Acc<kExt>& acc) {
  if constexpr (kExt) {
    ExtSpanHist span_hist;
    for_each_tile<D>(p, len, [&](const auto* v, int64_t n, int64_t) {
      using V = std::remove_cv_t<std::remove_pointer_t<decltype(v)>>;
      Partial tile;
      ExtPartial tile_ext;
      ext_tile_or_slow<V>(v, n, shift_for(acc.p), tile, tile_ext, span_hist, acc.hist());
      acc.add_tile(tile, &tile_ext);
    });
    span_hist.flush_into(acc.hist());
    return;
  }
  for_each_tile<D>(p, len, [&](const auto* v, int64_t n, int64_t) {
    using V = std::remove_cv_t<std::remove_pointer_t<decltype(v)>>;
    constexpr int32_t kRead = std::is_same<V, float>::value ? kFloat32 : D;  // widened: float32
    Partial tile;
    ExtPartial tile_ext;
    tile_stats<kRead, kExt>(v, n, shift_for(acc.p), tile, &tile_ext, acc.hist());
    acc.add_tile(tile, &tile_ext);
  });
}

template <int32_t D, bool kExt>
static Acc<kExt> chunk_stats(const Chunk& c, double dormant_threshold) {
  const auto* p = static_cast<const typename Elem<D>::T*>(c.data) + c.start;
  Acc<kExt> acc;
  if (c.row_len <= 0) {
    span_stats<D, kExt>(p, c.len, acc);
    return acc;
  }
  const double row_len = static_cast<double>(c.row_len);
  for (int64_t r = 0; r < c.len; r += c.row_len) {
    Acc<kExt> row;
    span_stats<D, kExt>(p + r, c.row_len, row);
    if (row.p.l1 / row_len < dormant_threshold) row.p.n_dormant = 1;
    acc.add(row);
  }
  return acc;
}

// f(std::integral_constant<int32_t, D>{}) for the DType code `dtype` (codes past the
// others as float8_e5m2: callers have checked them).
template <class F>
static decltype(auto) with_dtype(int32_t dtype, F&& f) {
  switch (dtype) {
    case kFloat32:
      return f(std::integral_constant<int32_t, kFloat32>{});
    case kFloat64:
      return f(std::integral_constant<int32_t, kFloat64>{});
    case kFloat16:
      return f(std::integral_constant<int32_t, kFloat16>{});
    case kBFloat16:
      return f(std::integral_constant<int32_t, kBFloat16>{});
    case kFloat8E4M3:
      return f(std::integral_constant<int32_t, kFloat8E4M3>{});
    default:
      return f(std::integral_constant<int32_t, kFloat8E5M2>{});
  }
}

template <bool kExt>
static Acc<kExt> one_chunk(const Chunk& c, double dormant_threshold) {
  return with_dtype(c.dtype, [&](auto d) {
    return chunk_stats<decltype(d)::value, kExt>(c, dormant_threshold);
  });
}

template <bool kExt, class Out>
static void run_chunks(const Chunk* chunks, int64_t n_chunks, double dormant_threshold, Out* out,
                       int num_threads, bool parallel) {
#pragma omp parallel num_threads(num_threads) if (parallel)
  {
    const ExactDenormals exact;
    // Each chunk writes its own slot, so the schedule cannot change the result;
    // dynamic because the last chunk of each tensor is short.
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_chunks; ++i) {
      if constexpr (kExt) {
        out[i] = one_chunk<true>(chunks[i], dormant_threshold).r;
      } else {
        out[i] = one_chunk<false>(chunks[i], dormant_threshold).p;
      }
    }
  }
}

void chunk_partials(const Chunk* chunks, int64_t n_chunks, double dormant_threshold,
                    Partial* out, int num_threads, bool parallel) {
  run_chunks<false>(chunks, n_chunks, dormant_threshold, out, num_threads, parallel);
}

void chunk_records(const Chunk* chunks, int64_t n_chunks, double dormant_threshold,
                   ExtRecord* out, int num_threads, bool parallel) {
  run_chunks<true>(chunks, n_chunks, dormant_threshold, out, num_threads, parallel);
}

// ---- per-unit sums of |x| (ReDo's dormant units; fusedstats.watch) ----------------
//
// acc[u] += Σ over b, a of |x[b, u, a]| for a contiguous x viewed as [before, units,
// after]. Every element is widened to double before it is added, and each acc[u]
// receives its additions in an order fixed by the shape alone (b ascending; within a
// run of `after` elements, 8 lanes combined in a fixed tree; for fewer than 16 units
// with after == 1, 8 lanes by b % 8), so the bits do not depend on the thread count:
// threads split the units, never the sum of one unit.

// dst[i] += |v[i]| for n values.
template <int32_t D>
static void add_abs(const typename Elem<D>::T* v, int64_t n, double* dst) {
  for_each_tile<D>(v, n, [&](const auto* t, int64_t m, int64_t off) {
    for (int64_t i = 0; i < m; ++i) dst[off + i] += __builtin_fabs(static_cast<double>(t[i]));
  });
}

// lane[i % 8] += |v[i]| for n values of a type the loop reads directly.
template <class V>
static void add_abs_lanes(const V* v, int64_t n, double (&lane)[8]) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] += __builtin_fabs(static_cast<double>(v[i + k]));
  for (; i < n; ++i) lane[i & 7] += __builtin_fabs(static_cast<double>(v[i]));
}

// Σ|v[i]| of n values: 8 lanes (tiles are a multiple of 8 long, so lanes line up
// across them), combined in a fixed tree.
template <int32_t D>
static double sum_abs(const typename Elem<D>::T* v, int64_t n) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for_each_tile<D>(v, n, [&](const auto* t, int64_t m, int64_t) { add_abs_lanes(t, m, lane); });
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

constexpr int64_t kNarrowRowUnits = 16;

// Few units, after == 1: rows too short for a vector loop each. One sweep over the flat
// buffer; row b adds into lane b % 8 of its units (8 independent chains instead of one
// long one), and the lanes are combined in a fixed tree at the end.
template <int32_t D>
static void narrow_rows(const typename Elem<D>::T* x, int64_t n, int64_t units, double* acc) {
  double lanes[8][kNarrowRowUnits] = {};
  int64_t u = 0;
  int k = 0;
  for_each_tile<D>(x, n, [&](const auto* v, int64_t m, int64_t) {
    for (int64_t i = 0; i < m; ++i) {
      lanes[k][u] += __builtin_fabs(static_cast<double>(v[i]));
      if (++u == units) {
        u = 0;
        k = (k + 1) & 7;
      }
    }
  });
  for (int64_t j = 0; j < units; ++j)
    acc[j] += ((lanes[0][j] + lanes[1][j]) + (lanes[2][j] + lanes[3][j])) +
              ((lanes[4][j] + lanes[5][j]) + (lanes[6][j] + lanes[7][j]));
}

template <int32_t D>
static void unit_sums_block(const void* data, int64_t before, int64_t units, int64_t after,
                            int64_t u0, int64_t u1, double* acc) {
  const auto* x = static_cast<const typename Elem<D>::T*>(data);
  if (after == 1 && units < kNarrowRowUnits && u0 == 0 && u1 == units) {
    narrow_rows<D>(x, before * units, units, acc);
    return;
  }
  for (int64_t b = 0; b < before; ++b) {
    const auto* row = x + (b * units + u0) * after;
    if (after == 1) {
      add_abs<D>(row, u1 - u0, acc + u0);
    } else {
      for (int64_t u = u0; u < u1; ++u) acc[u] += sum_abs<D>(row + (u - u0) * after, after);
    }
  }
}

template <int32_t D>
static void unit_sums_typed(const void* data, int64_t before, int64_t units, int64_t after,
                            double* acc, int num_threads, bool parallel) {
  // One block of units per thread (a multiple of 16 units: whole cache lines of
  // float32 when after is 1); one block in all when serial.
  const int threads = parallel ? num_threads : 1;
  int64_t block = (units + threads - 1) / threads;
  block = (block + 15) / 16 * 16;
  const int64_t n_blocks = (units + block - 1) / block;
  if (n_blocks == 1) {
    const ExactDenormals exact;
    unit_sums_block<D>(data, before, units, after, 0, units, acc);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const ExactDenormals exact;
#pragma omp for schedule(static)
    for (int64_t j = 0; j < n_blocks; ++j) {
      const int64_t u0 = j * block;
      const int64_t u1 = u0 + block < units ? u0 + block : units;
      unit_sums_block<D>(data, before, units, after, u0, u1, acc);
    }
  }
}

void unit_abs_sums(const void* data, int32_t dtype, int64_t before, int64_t units, int64_t after,
                   double* acc, int num_threads, bool parallel) {
  with_dtype(dtype, [&](auto d) {
    unit_sums_typed<decltype(d)::value>(data, before, units, after, acc, num_threads, parallel);
  });
}

}  // namespace FS_ISA
}  // namespace cpu
}  // namespace fusedstats
