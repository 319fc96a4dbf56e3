// The CUDA kernels' own code, written once and compiled twice: by nvcc for the GPU
// (tensor_stats.cu, with the execution layer in exec_device.cuh) and by the host C++
// compiler for the emulation the tests run on every commit (csrc/emu/, layer in
// exec_host.h). Nothing here knows which: a kernel is a function of a block object `blk`
// whose layer says what a thread, a barrier, a shuffle tree and an atomic are.
//
// The block interface (B), written in SPMD style:
//   blk.each(f)      every thread runs f(tid, its state): one region between barriers.
//                    No communication between threads inside f (no shuffles, no
//                    barriers); the host runs the threads of a region one after the other.
//   blk.first(f)     thread 0 runs f(its state).
//   blk.barrier()    __syncthreads (the host's regions are already separated).
//   blk.reduce(get)  block tree over the records get(state): warp shuffles, then the
//                    warps in index order; thread 0's record ends up holding the block's.
//   blk.ticket(t)    atomic ticket; true (block-uniform) in the last block to arrive.
//   B::load, B::load_vec, B::load_l2, B::shared_inc, B::atomic_add: memory operations.
//   B::note(outcome) which way a thread's span went (counted by the emulation only).
//
// Launch 1 (chunk_kernel): one block per chunk of the table, any mix of tensors and
//   dtypes. Each thread sweeps its span once with shifted sums in registers (span.h),
//   checks the conditioning once, re-reads only when needed; the block merges its
//   threads in a fixed tree. Row mode also counts dormant rows (rows_dormant).
// Launch 2 (finish_kernel): one block per tensor merges that tensor's chunk records in
//   a fixed order and writes its row (or its mergeable record); in tensor_stats the last
//   block to take a ticket merges the tensors' records (strided over threads, then the
//   block tree: fixed order) into the global row.
// Before both, one memset re-arms the ticket and clears the histogram accumulators, in
//   the launch sequence itself (so every call and every graph replay starts clean, even
//   after a launch that shared the workspace was cut short or overlapped: review F5).
//
// Determinism: every merge order is fixed by indices, histogram counts are integers
// (their atomic order cannot change a sum), so a GPU run is bitwise reproducible and
// the emulation predicts it bit for bit (one exception: log2 in dynamic_range_log2,
// libm vs libdevice). Bits depend on the data pointer modulo 16 (it sets which
// elements are loaded as head, body or tail): the same values at another alignment
// may differ in the last bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fusedstats/plan.h"
#include "fusedstats/span.h"
#include "fusedstats/stats.h"

#if defined(__CUDACC__)
#define FS_KERNEL static __device__ __forceinline__
#define FS_UNROLL _Pragma("unroll")
#else
#define FS_KERNEL static inline
#define FS_UNROLL _Pragma("GCC unroll 8")
#endif

namespace fusedstats {
namespace cuda {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kLoadBytes = 16;
// Loads in flight per thread before any arithmetic: 4 x 16 B x 256 threads x 2+ blocks
// is >= 32 KiB per SM, about what HBM3 needs in flight to stay busy.
constexpr int kUnroll = 4;
// Elements per chunk (one block): float32 256 KiB, 256 elements per thread. Larger
// than the 2^15 of the first version: with one accumulator set per thread, the block's
// tree merge (5 shuffle levels + 7 merges by thread 0) is the per-chunk overhead.
constexpr int64_t kChunkElems = int64_t{1} << 16;
// Row mode: rows of a chunk that has this many rows or more get one thread each.
constexpr int64_t kThreadPerRowMin = kThreads;
constexpr int64_t kMaxGrid = 2147483647;  // gridDim.x

using Word = unsigned long long;  // records move as 8-byte words (shuffles, L2 loads)

struct alignas(16) Vec16 {
  uint32_t w[4];
};

// ---- records: the per-thread / per-chunk state ------------------------------------

template <bool kExt>
struct Rec;
template <>
struct Rec<false> {
  Partial p;
};
template <>
struct Rec<true> {
  Partial p;
  ExtPartial e;
};
static_assert(sizeof(Rec<false>) == sizeof(Partial), "Rec<false> is a Partial");
static_assert(sizeof(Rec<true>) == sizeof(Partial) + sizeof(ExtPartial), "Rec<true> is packed");
// An ExtRecord starts with a Rec<true>: the records API moves the first 168 bytes as one.
static_assert(offsetof(ExtRecord, ext) == sizeof(Partial), "ExtRecord layout");
static_assert(offsetof(ExtRecord, hist) == sizeof(Rec<true>), "ExtRecord layout");

FS_FN void rec_empty(Rec<false>& r) { r.p = partial_empty(); }
FS_FN void rec_empty(Rec<true>& r) {
  r.p = partial_empty();
  r.e = ext_empty();
}
FS_FN void rec_merge(Rec<false>& a, const Rec<false>& b) { partial_merge(a.p, b.p); }
FS_FN void rec_merge(Rec<true>& a, const Rec<true>& b) { ext_merge(a.p, a.e, b.p, b.e); }
FS_FN ExtPartial* ext_of(Rec<false>&) { return nullptr; }
FS_FN ExtPartial* ext_of(Rec<true>& r) { return &r.e; }

// Bytes of one record of the records API (Partial or ExtRecord) and of one output row.
template <bool kExt>
constexpr int64_t kRecordStride =
    kExt ? static_cast<int64_t>(sizeof(ExtRecord)) : static_cast<int64_t>(sizeof(Partial));
template <bool kExt>
constexpr int64_t kRowWidth = kExt ? kNumExtColumns : kNumColumns;

template <bool kExt>
struct RecThread {
  Rec<kExt> rec;
};

// What blk.reduce merges: a thread state's record. One type for every call, so that the
// device's block tree (and its shared memory) is instantiated once per record type.
struct RecOf {
  template <class TS>
#if defined(__CUDACC__)
  __host__ __device__
#endif
  auto& operator()(TS& ts) const {
    return ts.rec;
  }
};

template <class R, class B>
FS_KERNEL R load_rec(const uint8_t* src) {
  constexpr int kWords = static_cast<int>(sizeof(R) / sizeof(Word));
  static_assert(sizeof(R) % sizeof(Word) == 0, "records are 8-byte words");
  Word w[kWords];
  const Word* s = reinterpret_cast<const Word*>(src);
  FS_UNROLL
  for (int i = 0; i < kWords; ++i) w[i] = B::load_l2(s + i);
  R r;
  memcpy(&r, w, sizeof r);
  return r;
}

template <class R>
FS_KERNEL void store_rec(uint8_t* dst, const R& r) {
  constexpr int kWords = static_cast<int>(sizeof(R) / sizeof(Word));
  Word w[kWords];
  memcpy(w, &r, sizeof r);
  Word* d = reinterpret_cast<Word*>(dst);
  FS_UNROLL
  for (int i = 0; i < kWords; ++i) d[i] = w[i];
}

FS_KERNEL int64_t* hist_of(uint8_t* ext_record) {
  return reinterpret_cast<int64_t*>(ext_record + offsetof(ExtRecord, hist));
}
FS_KERNEL const int64_t* hist_of(const uint8_t* ext_record) {
  return reinterpret_cast<const int64_t*>(ext_record + offsetof(ExtRecord, hist));
}

// ---- a thread's span: which elements, in which order ------------------------------

// A chunk's elements are a scalar head up to 16-byte alignment (one element each for
// threads 0..head-1), a body of 16-byte vectors (vector i for thread i mod kThreads,
// kUnroll loads in flight), and a scalar tail (one element each for threads 0..).
struct SpanShape {
  int64_t len, head, n_vec, tail_start;
};

template <int32_t D>
FS_KERNEL SpanShape span_shape(const typename Elem<D>::T* p, int64_t len) {
  using T = typename Elem<D>::T;
  constexpr int64_t kVec = kLoadBytes / static_cast<int64_t>(sizeof(T));
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  SpanShape s;
  s.len = len;
  s.head = static_cast<int64_t>(((kLoadBytes - addr % kLoadBytes) % kLoadBytes) / sizeof(T));
  if (s.head > len) s.head = len;
  s.n_vec = (len - s.head) / kVec;
  s.tail_start = s.head + s.n_vec * kVec;
  return s;
}

// The thread's first element in visiting order (its shift); false if it has none.
template <int32_t D, class B>
FS_KERNEL bool span_first(const typename Elem<D>::T* p, const SpanShape& s, int tid,
                          typename Elem<D>::N& first) {
  constexpr int64_t kVec = kLoadBytes / static_cast<int64_t>(sizeof(typename Elem<D>::T));
  int64_t i = -1;
  if (tid < s.head) {
    i = tid;
  } else if (tid < s.n_vec) {
    i = s.head + int64_t{tid} * kVec;
  } else if (s.tail_start + tid < s.len) {
    i = s.tail_start + tid;
  }
  if (i < 0) return false;
  first = Elem<D>::load(B::load(p + i));
  return true;
}

// Calls f(x) for every element of thread tid's span, in the one fixed order.
template <int32_t D, class B, class F>
FS_KERNEL void visit_span(const typename Elem<D>::T* p, const SpanShape& s, int tid, F& f) {
  using T = typename Elem<D>::T;
  constexpr int kVec = kLoadBytes / static_cast<int>(sizeof(T));
  if (tid < s.head) f(Elem<D>::load(B::load(p + tid)));
  const Vec16* vec = reinterpret_cast<const Vec16*>(p + s.head);
  for (int64_t base = tid; base < s.n_vec; base += int64_t{kThreads} * kUnroll) {
    Vec16 raw[kUnroll];
    FS_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t{u} * kThreads;
      if (i < s.n_vec) {
        raw[u] = B::load_vec(vec + i);
      } else {
        raw[u] = Vec16{{0u, 0u, 0u, 0u}};
      }
    }
    FS_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      if (base + int64_t{u} * kThreads < s.n_vec) {
        T vals[kVec];
        memcpy(vals, &raw[u], sizeof raw[u]);
        FS_UNROLL
        for (int j = 0; j < kVec; ++j) f(Elem<D>::load(vals[j]));
      }
    }
  }
  if (s.tail_start + tid < s.len) f(Elem<D>::load(B::load(p + s.tail_start + tid)));
}

// The same elements in the same order, one scalar load at a time and not unrolled: for
// the re-reads (rare), which need neither the loads in flight nor the code size and
// registers of the unrolled sweep.
template <int32_t D, class B, class F>
FS_KERNEL void revisit_span(const typename Elem<D>::T* p, const SpanShape& s, int tid, F& f) {
  constexpr int64_t kVec = kLoadBytes / static_cast<int64_t>(sizeof(typename Elem<D>::T));
  if (tid < s.head) f(Elem<D>::load(B::load(p + tid)));
  const typename Elem<D>::T* body = p + s.head;
#if defined(__CUDACC__)
#pragma unroll 1
#endif
  for (int64_t i = tid; i < s.n_vec; i += kThreads) {
#if defined(__CUDACC__)
#pragma unroll 1
#endif
    for (int64_t j = 0; j < kVec; ++j) f(Elem<D>::load(B::load(body + i * kVec + j)));
  }
  if (s.tail_start + tid < s.len) f(Elem<D>::load(B::load(p + s.tail_start + tid)));
}

// ---- the chunk kernel -------------------------------------------------------------

template <bool kExt>
struct ChunkShared {
  uint32_t hist[kExt ? kWarps * kHistBins : 1];  // per-warp exponent histograms
  double row_part[kThreads];                     // row mode: |x| sums of row segments
};

template <bool kExt>
struct ChunkThread {
  Rec<kExt> rec;
  int64_t dormant;
};

struct ChunkArgs {
  const Chunk* chunks;
  double dormant_threshold;
  uint8_t* chunk_recs;  // n_chunks x sizeof(Rec<kExt>)
  int64_t* hist_acc;    // extended: (n_tensors + 1) x kHistBins, cleared by the launch
  int64_t n_tensors;
  int32_t global_hist;  // extended: also count into row n_tensors (tensor_stats)
};

// One thread's statistics of its span: one sweep, one conditioning check, a re-read
// only when needed (span.h). The extended pass adds, in the same sweep, the smallest
// nonzero |x|, the overflow counts and the exponent histogram (shared-memory counters of
// the thread's warp): these do not depend on how the moments are taken.
template <int32_t D, bool kExt, class B, class Sh>
FS_KERNEL void thread_span(const typename Elem<D>::T* p, const SpanShape& shape, int tid,
                           Rec<kExt>& out, Sh& sh) {
  using N = typename Elem<D>::N;
  rec_empty(out);
  N first;
  if (!span_first<D, B>(p, shape, tid, first)) return;
  SpanSums<D, kExt> s;
  span_begin(s, first);
  N min_abs = static_cast<N>(fs_inf());
  // 32-bit: a thread sees at most 2^26 elements in the extended pass (cuda_path caps its
  // chunks at 2^34 elements, for the 32-bit shared histogram too); 4 registers fewer.
  int32_t over[kNumFormats] = {0, 0, 0, 0};
  uint32_t* hist = kExt ? sh.hist + (tid / kWarpSize) * kHistBins : nullptr;
  auto sweep = [&](N xn) {
    span_add(s, xn);
    if constexpr (kExt) {
      const N ax = xn < N(0) ? -xn : xn;
      min_abs = (ax != N(0) && ax < min_abs) ? ax : min_abs;
      if (xn - xn == N(0)) {  // finite
        FS_UNROLL
        for (int f = 0; f < kNumFormats; ++f)
          over[f] += ax > static_cast<N>(format_max_finite(f)) ? 1 : 0;
        B::shared_inc(hist + hist_bin(static_cast<double>(xn)));
      }
    }
  };
  visit_span<D, B>(p, shape, tid, sweep);
  ExtPartial* te = ext_of(out);
  int32_t outcome = span_finish(s, out.p, te);
  if (outcome == kSpanTwoPass) {
    SpanTwoPass tp;
    if (span_two_pass_begin(s, tp)) {
      auto second = [&](N xn) { span_two_pass_add<D, kExt>(tp, xn); };
      revisit_span<D, B>(p, shape, tid, second);
      if (!span_two_pass_finish(s, tp, out.p, te)) outcome = kSpanSlow;
    } else {
      outcome = kSpanSlow;
    }
  }
  if (outcome == kSpanSlow) {
    span_slow_begin(out.p);
    auto counts = [&](N xn) { span_slow_add1(out.p, static_cast<double>(xn)); };
    revisit_span<D, B>(p, shape, tid, counts);
    SpanSlow sl{};
    if (out.p.n_finite > 0) {
      if (!span_slow_mid(out.p, sl)) {
        auto mean = [&](N xn) { span_slow_add_mean(sl, static_cast<double>(xn)); };
        revisit_span<D, B>(p, shape, tid, mean);
        span_slow_mean_done(sl);
      }
      auto deviations = [&](N xn) { span_slow_add2<kExt>(sl, static_cast<double>(xn)); };
      revisit_span<D, B>(p, shape, tid, deviations);
    }
    span_slow_finish<kExt>(sl, out.p, te);
  }
  B::note(outcome);
  if constexpr (kExt) {
    te->min_abs = static_cast<double>(min_abs);
    for (int f = 0; f < kNumFormats; ++f) te->n_over[f] = over[f];
  }
}

// Σ|x| over the finite elements seg, seg + step, ... of one row.
template <int32_t D, class B>
FS_KERNEL double row_l1(const typename Elem<D>::T* row, int64_t seg, int64_t step,
                        int64_t row_len) {
  double s = 0.0;
  for (int64_t i = seg; i < row_len; i += step) {
    const double x = static_cast<double>(Elem<D>::load(B::load(row + i)));
    s += fs_finite(x) ? fabs(x) : 0.0;
  }
  return s;
}

// Row mode, chunks of two or more rows: each row's mean |w| against the threshold, from
// a second sweep of the chunk (it was just read: L1/L2) that keeps one double per thread
// (the first version merged 14-field records per element and spilled). Many short
// rows: a thread per row. Fewer rows than threads: kThreads / rows threads per row, each
// summing a strided segment (coalesced), the segments added in order by one thread.
// A chunk that is one row takes the row's l1 from the chunk's own statistics instead.
template <int32_t D, class B, class Sh, class TS>
FS_KERNEL void rows_dormant(B& blk, const typename Elem<D>::T* p, int64_t len, int64_t row_len,
                            double threshold, Sh& sh) {
  const int64_t rows = len / row_len;
  const double len_d = static_cast<double>(row_len);
  if (rows >= kThreadPerRowMin) {
    blk.each([&](int tid, TS& ts) {
      for (int64_t r = tid; r < rows; r += kThreads)
        ts.dormant += row_l1<D, B>(p + r * row_len, 0, 1, row_len) / len_d < threshold ? 1 : 0;
    });
    return;
  }
  const int64_t segs = kThreads / rows;
  blk.each([&](int tid, TS&) {
    if (tid < rows * segs)
      sh.row_part[tid] = row_l1<D, B>(p + (tid / segs) * row_len, tid % segs, segs, row_len);
  });
  blk.barrier();
  blk.each([&](int tid, TS& ts) {
    if (tid < rows) {
      double s = 0.0;
      for (int64_t j = 0; j < segs; ++j) s += sh.row_part[tid * segs + j];
      ts.dormant += s / len_d < threshold ? 1 : 0;
    }
  });
}

// The dtype-dependent part of a chunk: dormant rows and every thread's span.
template <int32_t D, bool kRows, bool kExt, class B>
FS_KERNEL void chunk_spans(B& blk, const ChunkArgs& a, const Chunk& c, ChunkShared<kExt>& sh) {
  using TS = ChunkThread<kExt>;
  using T = typename Elem<D>::T;
  const T* p = static_cast<const T*>(c.data) + c.start;
  if (kRows && c.row_len > 0 && c.len > c.row_len)
    rows_dormant<D, B, ChunkShared<kExt>, TS>(blk, p, c.len, c.row_len, a.dormant_threshold, sh);
  const SpanShape shape = span_shape<D>(p, c.len);
  blk.each([&](int tid, TS& ts) {
    thread_span<D, kExt, B>(p, shape, tid, ts.rec, sh);
    ts.rec.p.n_dormant += ts.dormant;
  });
}

template <bool kRows, bool kExt, class B>
FS_KERNEL void chunk_block(B& blk, const ChunkArgs& a, ChunkShared<kExt>& sh) {
  using TS = ChunkThread<kExt>;
  const Chunk c = a.chunks[blk.block()];
  if constexpr (kExt) {
    blk.each([&](int tid, TS&) {
      for (int i = tid; i < kWarps * kHistBins; i += kThreads) sh.hist[i] = 0u;
    });
    blk.barrier();
  }
  blk.each([&](int, TS& ts) { ts.dormant = 0; });
  switch (c.dtype) {
    case kFloat32:
      chunk_spans<kFloat32, kRows, kExt>(blk, a, c, sh);
      break;
    case kFloat64:
      chunk_spans<kFloat64, kRows, kExt>(blk, a, c, sh);
      break;
    case kFloat16:
      chunk_spans<kFloat16, kRows, kExt>(blk, a, c, sh);
      break;
    case kBFloat16:
      chunk_spans<kBFloat16, kRows, kExt>(blk, a, c, sh);
      break;
    case kFloat8E4M3:
      chunk_spans<kFloat8E4M3, kRows, kExt>(blk, a, c, sh);
      break;
    default:
      chunk_spans<kFloat8E5M2, kRows, kExt>(blk, a, c, sh);
      break;
  }
  if (kExt) blk.barrier();  // every histogram increment of the block is in
  blk.reduce(RecOf{});
  const bool one_row = kRows && c.row_len > 0 && c.len == c.row_len;
  blk.first([&](TS& ts) {
    if (one_row)
      ts.rec.p.n_dormant = ts.rec.p.l1 / static_cast<double>(c.row_len) < a.dormant_threshold ? 1 : 0;
    store_rec(a.chunk_recs + blk.block() * static_cast<int64_t>(sizeof(Rec<kExt>)), ts.rec);
  });
  if constexpr (kExt) {
    int64_t* tensor_hist = a.hist_acc + int64_t{c.tensor} * kHistBins;
    int64_t* global_hist = a.hist_acc + a.n_tensors * kHistBins;
    blk.each([&](int tid, TS&) {
      for (int b = tid; b < kHistBins; b += kThreads) {
        int64_t v = 0;
        for (int w = 0; w < kWarps; ++w) v += sh.hist[w * kHistBins + b];
        if (v != 0) {
          B::atomic_add(tensor_hist + b, v);
          if (a.global_hist) B::atomic_add(global_hist + b, v);
        }
      }
    });
  }
}

// ---- the finishing kernel ---------------------------------------------------------

enum FinishMode : int32_t { kModeStats = 0, kModeRecords = 1, kModeAccumulate = 2 };

struct FinishArgs {
  const int64_t* first_chunk;  // n_tensors + 1
  int64_t n_tensors;
  const uint8_t* chunk_recs;
  uint8_t* tensor_recs;  // n_tensors x sizeof(Rec<kExt>) (tensor_stats' global merge)
  unsigned int* ticket;
  const int64_t* hist_acc;
  int32_t mode;
  double* out;        // kModeStats: (n_tensors + 1) x row_width
  int64_t* hist_out;  // kModeStats, extended: (n_tensors + 1) x kHistBins
  uint8_t* records;   // kModeRecords / kModeAccumulate: n_tensors x record_stride
};

FS_KERNEL void write_row(const Rec<false>& r, const int64_t*, double* row) {
  partial_finalize(r.p, row);
}
FS_KERNEL void write_row(const Rec<true>& r, const int64_t* hist, double* row) {
  partial_finalize(r.p, row);
  ext_finalize(r.p, r.e, hist, row);
}

// The global row: n records merged strided over threads then by the block tree (a fixed
// order: finalize_block uses the same code, so the global row of tensor_stats equals
// the one finalize_records gives for the same records, bit for bit).
template <bool kExt, class B>
FS_KERNEL void global_row(B& blk, const uint8_t* recs, int64_t stride, int64_t n,
                          const int64_t* hist_src, double* row, int64_t* hist_row) {
  using TS = RecThread<kExt>;
  using R = Rec<kExt>;
  if constexpr (kExt) {
    blk.each([&](int tid, TS&) {
      for (int b = tid; b < kHistBins; b += kThreads) hist_row[b] = static_cast<int64_t>(
          B::load_l2(reinterpret_cast<const Word*>(hist_src + b)));
    });
    blk.barrier();
  }
  blk.each([&](int tid, TS& ts) {
    rec_empty(ts.rec);
    for (int64_t i = tid; i < n; i += kThreads) rec_merge(ts.rec, load_rec<R, B>(recs + i * stride));
  });
  blk.reduce(RecOf{});
  blk.first([&](TS& ts) { write_row(ts.rec, hist_row, row); });
}

template <bool kExt, class B>
FS_KERNEL void finish_block(B& blk, const FinishArgs& a) {
  using TS = RecThread<kExt>;
  using R = Rec<kExt>;
  constexpr int64_t kRec = static_cast<int64_t>(sizeof(R));
  const int64_t width = kRowWidth<kExt>;
  const int64_t t = blk.block();
  if (t < a.n_tensors) {
    const int64_t c0 = a.first_chunk[t], c1 = a.first_chunk[t + 1];
    blk.each([&](int tid, TS& ts) {
      rec_empty(ts.rec);
      for (int64_t c = c0 + tid; c < c1; c += kThreads) rec_merge(ts.rec, load_rec<R, B>(a.chunk_recs + c * kRec));
    });
    blk.reduce(RecOf{});
    const int64_t* hist_t = a.hist_acc + t * kHistBins;
    uint8_t* record = a.mode == kModeStats ? nullptr : a.records + t * kRecordStride<kExt>;
    blk.first([&](TS& ts) {
      if (a.mode == kModeStats) {
        store_rec(a.tensor_recs + t * kRec, ts.rec);
        write_row(ts.rec, hist_t, a.out + t * width);
      } else if (a.mode == kModeAccumulate) {
        R held = load_rec<R, B>(record);  // what the record held, then this call's data
        rec_merge(held, ts.rec);
        store_rec(record, held);
      } else {
        store_rec(record, ts.rec);
      }
    });
    if constexpr (kExt) {
      blk.each([&](int tid, TS&) {
        for (int b = tid; b < kHistBins; b += kThreads) {
          const int64_t v = hist_t[b];
          if (a.mode == kModeStats) {
            a.hist_out[t * kHistBins + b] = v;
          } else {
            int64_t* h = hist_of(record);
            h[b] = (a.mode == kModeAccumulate ? h[b] : 0) + v;
          }
        }
      });
    }
  }
  if (a.mode != kModeStats) return;
  if (!blk.ticket(a.ticket)) return;
  global_row<kExt>(blk, a.tensor_recs, kRec, a.n_tensors, a.hist_acc + a.n_tensors * kHistBins,
                   a.out + a.n_tensors * width,
                   kExt ? a.hist_out + a.n_tensors * kHistBins : nullptr);
}

// ---- records API: rows of records, merge of records -------------------------------

struct FinalizeArgs {
  const uint8_t* records;  // n x record_stride
  int64_t n;
  unsigned int* ticket;
  int64_t* hist_acc;  // extended: kHistBins, cleared by the launch
  double* out;        // (n + 1) x row_width
  int64_t* hist_out;  // extended: (n + 1) x kHistBins
};

template <bool kExt, class B>
FS_KERNEL void finalize_block(B& blk, const FinalizeArgs& a) {
  using TS = RecThread<kExt>;
  using R = Rec<kExt>;
  constexpr int64_t kStride = kRecordStride<kExt>;
  const int64_t width = kRowWidth<kExt>;
  const int64_t t = blk.block();
  if (t < a.n) {
    const uint8_t* record = a.records + t * kStride;
    blk.first([&](TS&) {
      const R r = load_rec<R, B>(record);
      write_row(r, kExt ? hist_of(record) : nullptr, a.out + t * width);
    });
    if constexpr (kExt) {
      blk.each([&](int tid, TS&) {
        for (int b = tid; b < kHistBins; b += kThreads) {
          const int64_t v = hist_of(record)[b];
          a.hist_out[t * kHistBins + b] = v;
          if (v != 0) B::atomic_add(a.hist_acc + b, v);
        }
      });
    }
  }
  if (!blk.ticket(a.ticket)) return;
  global_row<kExt>(blk, a.records, kStride, a.n, a.hist_acc, a.out + a.n * width,
                   kExt ? a.hist_out + a.n * kHistBins : nullptr);
}

struct MergeArgs {
  const uint8_t* src;  // n_sources x n records
  int64_t n_sources;
  int64_t n;
  const uint8_t* include;  // n_sources x n, or null (all)
  uint8_t* dst;            // n records
};

// dst[t] = src[0][t] ∪ src[1][t] ∪ ... in source order, skipping excluded ones: one
// thread walks the sources, exactly as the CPU's merge_records does (same functions,
// same order, no contraction), so the two give the same bits. Extended records: a
// block per record, the histogram bins added by all its threads.
template <bool kExt, class B>
FS_KERNEL void merge_block(B& blk, const MergeArgs& a) {
  using TS = RecThread<kExt>;
  using R = Rec<kExt>;
  constexpr int64_t kStride = kRecordStride<kExt>;
  const int64_t n = a.n;
  auto included = [&](int64_t s, int64_t t) { return a.include == nullptr || a.include[s * n + t] != 0; };
  if (!kExt) {
    blk.each([&](int tid, TS&) {
      const int64_t t = blk.block() * kThreads + tid;
      if (t >= n) return;
      R acc;
      rec_empty(acc);
      for (int64_t s = 0; s < a.n_sources; ++s)
        if (included(s, t)) rec_merge(acc, load_rec<R, B>(a.src + (s * n + t) * kStride));
      store_rec(a.dst + t * kStride, acc);
    });
    return;
  }
  const int64_t t = blk.block();
  blk.first([&](TS&) {
    R acc;
    rec_empty(acc);
    for (int64_t s = 0; s < a.n_sources; ++s)
      if (included(s, t)) rec_merge(acc, load_rec<R, B>(a.src + (s * n + t) * kStride));
    store_rec(a.dst + t * kStride, acc);
  });
  blk.each([&](int tid, TS&) {
    for (int b = tid; b < kHistBins; b += kThreads) {
      int64_t v = 0;
      for (int64_t s = 0; s < a.n_sources; ++s)
        if (included(s, t)) v += hist_of(a.src + (s * n + t) * kStride)[b];
      hist_of(a.dst + t * kStride)[b] = v;
    }
  });
}

// ---- workspaces and launch sequences (host code, shared) ----------------------------

constexpr int64_t align16(int64_t x) { return (x + 15) / 16 * 16; }

// [ticket: 16 B][histogram accumulators (extended)][chunk records][tensor records].
// The first two are what the launch's memset clears; the records are written before
// they are read, so the rest needs no initialization.
struct WorkspaceLayout {
  int64_t ticket, hist, chunk_recs, tensor_recs, total, memset_bytes;
};

inline WorkspaceLayout workspace_layout(int64_t n_chunks, int64_t n_tensors, bool ext) {
  const int64_t rec = ext ? static_cast<int64_t>(sizeof(Rec<true>)) : static_cast<int64_t>(sizeof(Rec<false>));
  WorkspaceLayout w;
  w.ticket = 0;
  w.hist = 16;
  const int64_t hist_bytes = ext ? (n_tensors + 1) * kHistBins * static_cast<int64_t>(sizeof(int64_t)) : 0;
  w.memset_bytes = w.hist + hist_bytes;
  w.chunk_recs = align16(w.memset_bytes);
  w.tensor_recs = w.chunk_recs + align16(n_chunks * rec);
  w.total = w.tensor_recs + align16(n_tensors * rec);
  return w;
}

// finalize_records: [ticket: 16 B][global histogram accumulator (extended)], all cleared.
inline int64_t finalize_workspace_size(bool ext) {
  return 16 + (ext ? kHistBins * static_cast<int64_t>(sizeof(int64_t)) : 0);
}

// The launch sequences, for any launcher L (the CUDA runtime, or the emulation):
//   L::memset(p, bytes) -> error; L::chunk<kRows, kExt>(grid, args),
//   L::finish<kExt>(grid, args), L::finalize<kExt>(grid, args), L::merge<kExt>(grid, args)
//   -> error; L::kInvalidValue: the error for sizes a grid cannot take.
// tensor_stats / tensor_records: memset + 2 launches.
template <class L>
inline int run_tensor_pass(L& l, const uint8_t* table, int64_t n_chunks, int64_t n_tensors,
                           bool has_rows, bool ext, uint8_t* ws, double dormant_threshold,
                           int32_t mode, double* out, int64_t* hist_out, uint8_t* records) {
  if (n_chunks < 0 || n_tensors < 0 || n_chunks > kMaxGrid || n_tensors > kMaxGrid) return L::kInvalidValue;
  const WorkspaceLayout w = workspace_layout(n_chunks, n_tensors, ext);
  int err = l.memset(ws, w.memset_bytes);
  if (err) return err;
  const auto* chunks = reinterpret_cast<const Chunk*>(table);
  const auto* first_chunk = reinterpret_cast<const int64_t*>(table + n_chunks * static_cast<int64_t>(sizeof(Chunk)));
  auto* hist_acc = reinterpret_cast<int64_t*>(ws + w.hist);
  if (n_chunks > 0) {
    const ChunkArgs ca{chunks, dormant_threshold, ws + w.chunk_recs, hist_acc, n_tensors,
                       mode == kModeStats ? 1 : 0};
    if (ext) {
      err = has_rows ? l.template chunk<true, true>(n_chunks, ca) : l.template chunk<false, true>(n_chunks, ca);
    } else {
      err = has_rows ? l.template chunk<true, false>(n_chunks, ca) : l.template chunk<false, false>(n_chunks, ca);
    }
    if (err) return err;
  }
  const FinishArgs fa{first_chunk, n_tensors, ws + w.chunk_recs, ws + w.tensor_recs,
                      reinterpret_cast<unsigned int*>(ws + w.ticket), hist_acc, mode,
                      out, hist_out, records};
  const int64_t grid = n_tensors > 0 ? n_tensors : 1;
  return ext ? l.template finish<true>(grid, fa) : l.template finish<false>(grid, fa);
}

// finalize_records: memset + 1 launch.
template <class L>
inline int run_finalize(L& l, const uint8_t* records, int64_t n, bool ext, uint8_t* ws, double* out,
                        int64_t* hist_out) {
  if (n < 0 || n > kMaxGrid) return L::kInvalidValue;
  const int err = l.memset(ws, finalize_workspace_size(ext));
  if (err) return err;
  const FinalizeArgs fa{records, n, reinterpret_cast<unsigned int*>(ws),
                        reinterpret_cast<int64_t*>(ws + 16), out, hist_out};
  const int64_t grid = n > 0 ? n : 1;
  return ext ? l.template finalize<true>(grid, fa) : l.template finalize<false>(grid, fa);
}

// merge_records: 1 launch (none for n = 0).
template <class L>
inline int run_merge(L& l, const uint8_t* src, int64_t n_sources, int64_t n, bool ext,
                     const uint8_t* include, uint8_t* dst) {
  if (n < 0 || n_sources < 0 || n > kMaxGrid) return L::kInvalidValue;
  if (n == 0) return 0;
  const MergeArgs ma{src, n_sources, n, include, dst};
  return ext ? l.template merge<true>(n, ma) : l.template merge<false>((n + kThreads - 1) / kThreads, ma);
}

}  // namespace cuda
}  // namespace fusedstats
