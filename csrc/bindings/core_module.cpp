// fusedstats._core: binds the CPU kernel. Converts arguments, releases the GIL,
// calls the core; no arithmetic here. Validation lives in fusedstats.kernels.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../cpu/cpu_kernels.h"
#include "../cpython/info_flattener.h"
#include "descriptors.h"
#include "fusedstats/scalars.h"
#include "fusedstats/series.h"

namespace py = pybind11;
namespace fs = fusedstats;

// Set by CMakeLists.txt: whether fusedstats._cuda was built, and if not, why (one line).
#ifndef FUSEDSTATS_CUDA_STATUS
#define FUSEDSTATS_CUDA_STATUS "unknown"
#endif

#define FS_STR2(x) #x
#define FS_STR(x) FS_STR2(x)

namespace {

using fs::bindings::descriptors;

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + FS_STR(__GNUC__) "." FS_STR(__GNUC_MINOR__) "." FS_STR(
                                   __GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

void require(bool ok, const char* what) {
  if (!ok) throw py::value_error(what);
}

// Calls f(item) for every item of a list, tuple or deque (borrowed references).
template <class F>
void for_each_item(PyObject* seq, F&& f) {
  if (PyList_CheckExact(seq) || PyTuple_CheckExact(seq)) {
    const Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    PyObject** items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t k = 0; k < len; ++k) f(items[k]);
    return;
  }
  // A deque (windowed Stats): iterate it in place. PySequence_Fast would copy it into a
  // new list first, which measured 8x slower here.
  py::object it = py::reinterpret_steal<py::object>(PyObject_GetIter(seq));
  if (!it) throw py::error_already_set();
  while (PyObject* item = PyIter_Next(it.ptr())) {
    py::object hold = py::reinterpret_steal<py::object>(item);
    f(item);
  }
  if (PyErr_Occurred()) throw py::error_already_set();
}

// Reads a sequence of value lists (list, tuple or deque of python numbers) into one
// flat double array with offsets: the argument conversion of the series functions.
// One C loop with PyFloat_AS_DOUBLE costs a few ns a value, where numpy.fromiter over
// itertools.chain cost ~55 ns here. Runs with the GIL held, so no list changes under it.
void flatten_series(const py::sequence& series, std::vector<double>& values,
                    std::vector<int64_t>& offsets) {
  const Py_ssize_t n = PySequence_Size(series.ptr());
  if (n < 0) throw py::error_already_set();
  offsets.assign(static_cast<size_t>(n) + 1, 0);
  values.clear();
  auto take = [&values](PyObject* item) {
    if (PyFloat_CheckExact(item)) {
      values.push_back(PyFloat_AS_DOUBLE(item));
      return;
    }
    const double x = PyFloat_AsDouble(item);  // ints, numpy scalars; raises otherwise
    if (x == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    values.push_back(x);
  };
  for (Py_ssize_t i = 0; i < n; ++i) {
    py::object one = py::reinterpret_steal<py::object>(PySequence_GetItem(series.ptr(), i));
    if (!one) throw py::error_already_set();
    for_each_item(one.ptr(), take);
    offsets[static_cast<size_t>(i) + 1] = static_cast<int64_t>(values.size());
  }
}

// A read-only view of a bytes-like or array argument (array.array, numpy) of T.
template <class T>
const T* buffer_of(const py::buffer& b, size_t expected, const char* what) {
  const py::buffer_info info = b.request();
  if (info.ndim != 1 || info.itemsize != static_cast<py::ssize_t>(sizeof(T)) ||
      static_cast<size_t>(info.size) != expected || (info.size > 1 && info.strides[0] != info.itemsize))
    throw py::value_error(std::string(what) + ": expected a contiguous 1-D buffer of " +
                          std::to_string(expected) + " items of " + std::to_string(sizeof(T)) +
                          " bytes");
  return static_cast<const T*>(info.ptr);
}


// One python list per merged group: sourced values from source(series, index, value),
// computed ones as floats.
template <class Source>
py::list merged_lists(const fs::series::MergeOut& merged, Source&& source) {
  const size_t n_groups = merged.offsets.size() - 1;
  py::list out(n_groups);
  for (size_t g = 0; g < n_groups; ++g) {
    const auto a = static_cast<size_t>(merged.offsets[g]);
    const auto b = static_cast<size_t>(merged.offsets[g + 1]);
    PyObject* group = PyList_New(static_cast<Py_ssize_t>(b - a));
    if (!group) throw py::error_already_set();
    py::object hold = py::reinterpret_steal<py::object>(group);
    for (size_t j = a; j < b; ++j) {
      const int64_t s = merged.source_series[j];
      py::object v = s >= 0 ? source(s, merged.source_index[j], merged.value[j])
                            : py::reinterpret_steal<py::object>(PyFloat_FromDouble(merged.value[j]));
      if (!v) throw py::error_already_set();
      PyList_SET_ITEM(group, static_cast<Py_ssize_t>(j - a), v.release().ptr());
    }
    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(g), hold.release().ptr());
  }
  return out;
}

// The logger's op code for percentiles (reduced by series_percentiles).
constexpr int8_t kPercentilesOp = 6;

// series_reduce's python rules for one sequence, or None where the numbers are to be
// reduced as float64: a list (kNone) as a new list; an EMA of one value as that value;
// sum/min/max of python ints only with python's exact int arithmetic (min/max: the
// first extreme object, as the builtins; an empty sum 0, an empty min/max NaN).
py::object python_rule(PyObject* seq, int8_t op) {
  if (op == fs::series::kNone) return py::reinterpret_steal<py::object>(PySequence_List(seq));
  if (op == kPercentilesOp) return py::none();
  const Py_ssize_t len = PySequence_Size(seq);
  if (len < 0) throw py::error_already_set();
  if (op == fs::series::kEma && len == 1)
    return py::reinterpret_steal<py::object>(PySequence_GetItem(seq, 0));
  const bool int_rules = op == fs::series::kSum || op == fs::series::kMin || op == fs::series::kMax;
  if (!int_rules) return py::none();
  bool ints = true;
  for_each_item(seq, [&ints](PyObject* x) { ints = ints && PyLong_CheckExact(x); });
  if (!ints) return py::none();
  if (len == 0)
    return op == fs::series::kSum ? py::reinterpret_steal<py::object>(PyLong_FromLong(0))
                                  : py::reinterpret_steal<py::object>(PyFloat_FromDouble(NAN));
  py::object acc;
  for_each_item(seq, [&acc, op](PyObject* x) {
    if (!acc) {
      acc = py::reinterpret_borrow<py::object>(x);
    } else if (op == fs::series::kSum) {
      acc = py::reinterpret_steal<py::object>(PyNumber_Add(acc.ptr(), x));
      if (!acc) throw py::error_already_set();
    } else {
      const int better = PyObject_RichCompareBool(x, acc.ptr(), op == fs::series::kMin ? Py_LT : Py_GT);
      if (better < 0) throw py::error_already_set();
      if (better) acc = py::reinterpret_borrow<py::object>(x);
    }
  });
  return acc;
}

// sync_logger's per-key flag for values that are python ints (fusedstats.distributed._wire).
constexpr int64_t kFlagInts = 1;
// Larger ints do not survive float64 exactly.
constexpr long long kExactInt = 1LL << 53;

// Appends x as float64 and returns its kind: 1 a float, 2 an int of at most 2**53,
// 4 anything else (appended as 0.0: a bigger int, a tensor, another object).
char number_kind(PyObject* x, std::vector<double>& values) {
  if (PyFloat_CheckExact(x)) {
    values.push_back(PyFloat_AS_DOUBLE(x));
    return 1;
  }
  if (PyLong_CheckExact(x)) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
    if (!overflow && v <= kExactInt && v >= -kExactInt) {
      values.push_back(static_cast<double>(v));
      return 2;
    }
    if (PyErr_Occurred()) PyErr_Clear();
  }
  values.push_back(0.0);
  return 4;
}

// A rank's float64 block, read in place: n keys' lengths, previous results, flags, then
// every key's values in order.
struct RankBlock {
  int64_t n = 0;
  std::vector<int64_t> lens, flags, starts;
  const double* values = nullptr;
};

RankBlock rank_block(const py::buffer_info& info) {
  if (info.ndim != 1 || info.itemsize != static_cast<py::ssize_t>(sizeof(double)) ||
      (info.size > 1 && info.strides[0] != info.itemsize))
    throw py::value_error("series_merge_blocks: a block must be a contiguous float64 buffer");
  const auto* f64 = static_cast<const double*>(info.ptr);
  const auto size = static_cast<int64_t>(info.size);
  RankBlock b;
  require(size >= 1, "series_merge_blocks: empty block");
  // The block's first field is the key count n; then lens, prev, prev2, flags, values.
  b.n = static_cast<int64_t>(f64[0]);
  require(b.n >= 0 && 1 + 4 * b.n <= size, "series_merge_blocks: block too short");
  const double* head = f64 + 1;
  int64_t total = 0;
  for (int64_t i = 0; i < b.n; ++i) {
    const double len = head[i];
    require(len >= 0 && len <= static_cast<double>(size), "series_merge_blocks: bad length");
    b.lens.push_back(static_cast<int64_t>(len));
    b.flags.push_back(static_cast<int64_t>(head[3 * b.n + i]));
    b.starts.push_back(total);
    total += b.lens.back();
  }
  require(1 + 4 * b.n + total <= size, "series_merge_blocks: values past the block's end");
  b.values = head + 4 * b.n;
  return b;
}
}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fusedstats CPU kernels (private; use the fusedstats package).";

  m.def(
      "tensor_stats",
      [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels,
         const std::vector<int32_t>& dtypes, const std::vector<int64_t>& row_lens,
         double dormant_threshold, uintptr_t out_ptr, bool extended, uintptr_t hist_ptr) {
        const auto descs = descriptors(ptrs, numels, dtypes, row_lens);
        py::gil_scoped_release release;
        fs::cpu::tensor_stats(descs.data(), static_cast<int64_t>(descs.size()), dormant_threshold,
                              extended, reinterpret_cast<double*>(out_ptr),
                              reinterpret_cast<int64_t*>(hist_ptr));
      },
      py::arg("ptrs"), py::arg("numels"), py::arg("dtypes"), py::arg("row_lens"),
      py::arg("dormant_threshold"), py::arg("out_ptr"), py::arg("extended") = false,
      py::arg("hist_ptr") = 0,
      "Statistics of contiguous host buffers into out ((n + 1) x NUM_COLUMNS float64, or "
      "NUM_EXT_COLUMNS with extended, last row global) and, with extended, the exponent "
      "histograms into hist ((n + 1) x HIST_BINS int64). The caller guarantees valid "
      "pointers and sizes.");

  m.def(
      "tensor_records",
      [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels,
         const std::vector<int32_t>& dtypes, const std::vector<int64_t>& row_lens,
         double dormant_threshold, bool extended, uintptr_t records_ptr, bool accumulate) {
        const auto descs = descriptors(ptrs, numels, dtypes, row_lens);
        py::gil_scoped_release release;
        fs::cpu::tensor_records(descs.data(), static_cast<int64_t>(descs.size()),
                                dormant_threshold, extended,
                                reinterpret_cast<void*>(records_ptr), accumulate);
      },
      py::arg("ptrs"), py::arg("numels"), py::arg("dtypes"), py::arg("row_lens"),
      py::arg("dormant_threshold"), py::arg("extended"), py::arg("records_ptr"),
      py::arg("accumulate"),
      "Per-tensor mergeable records (record_bytes(extended) each) of host buffers; with "
      "accumulate, merged into the records already there.");

  m.def(
      "finalize_records",
      [](uintptr_t records_ptr, int64_t n, bool extended, uintptr_t out_ptr, uintptr_t hist_ptr) {
        py::gil_scoped_release release;
        fs::cpu::finalize_records(reinterpret_cast<const void*>(records_ptr), n, extended,
                                  reinterpret_cast<double*>(out_ptr),
                                  reinterpret_cast<int64_t*>(hist_ptr));
      },
      py::arg("records_ptr"), py::arg("n"), py::arg("extended"), py::arg("out_ptr"),
      py::arg("hist_ptr") = 0,
      "Rows (and with extended, histograms) of n records; the last row merges them all.");

  m.def(
      "merge_records",
      [](uintptr_t src_ptr, int64_t n_sources, int64_t n, bool extended, uintptr_t include_ptr,
         uintptr_t dst_ptr) {
        py::gil_scoped_release release;
        fs::cpu::merge_records(reinterpret_cast<const void*>(src_ptr), n_sources, n, extended,
                               reinterpret_cast<const uint8_t*>(include_ptr),
                               reinterpret_cast<void*>(dst_ptr));
      },
      py::arg("src_ptr"), py::arg("n_sources"), py::arg("n"), py::arg("extended"),
      py::arg("include_ptr"), py::arg("dst_ptr"),
      "dst[t] = records src[s][t] merged over sources in order, where include[s][t] "
      "(uint8; 0 pointer: all).");

  m.def(
      "unit_abs_sums",
      [](uintptr_t data_ptr, int32_t dtype, int64_t before, int64_t units, int64_t after,
         uintptr_t acc_ptr) {
        require(dtype >= 0 && dtype < fs::kNumDTypes, "unit_abs_sums: unknown dtype code");
        require(before >= 0 && units >= 0 && after >= 0, "unit_abs_sums: negative size");
        if (before == 0 || units == 0 || after == 0) return;
        require(units <= INT64_MAX / before && after <= INT64_MAX / (before * units),
                "unit_abs_sums: size overflows");
        py::gil_scoped_release release;
        fs::cpu::unit_abs_sums(reinterpret_cast<const void*>(data_ptr), dtype, before, units,
                               after, reinterpret_cast<double*>(acc_ptr));
      },
      py::arg("data_ptr"), py::arg("dtype"), py::arg("before"), py::arg("units"),
      py::arg("after"), py::arg("acc_ptr"),
      "acc[u] += sum over b, a of |x[b, u, a]| (float64 acc of `units`) for the contiguous "
      "host buffer x viewed as [before, units, after]; the same bits at any thread count. "
      "The caller guarantees valid pointers and sizes.");

  m.def("record_bytes", &fs::cpu::record_bytes, py::arg("extended"),
        "Bytes of one tensor's mergeable record.");

  m.def(
      "series_reduce",
      [](const py::list& series, const py::buffer& ops, const py::buffer& ema_coeffs) {
        // Python's number rules first (the logger keeps RLlib's types): a list (kNone)
        // comes back as a list; an EMA of one value is that value as pushed; sum/min/
        // max of python ints only are exact python ints (the builtins' arithmetic,
        // the original object for min/max; 0 / NaN when empty); percentiles (op 6) are
        // left to the caller (None). The rest is flattened and reduced in one core call.
        const auto n = static_cast<size_t>(PyList_GET_SIZE(series.ptr()));
        const int8_t* op = buffer_of<int8_t>(ops, n, "series_reduce ops");
        const double* ema = buffer_of<double>(ema_coeffs, n, "series_reduce ema_coeffs");
        py::list out(n);
        std::vector<size_t> native;
        std::vector<int8_t> native_ops;
        std::vector<double> native_ema;
        py::list native_series;
        for (size_t i = 0; i < n; ++i) {
          PyObject* seq = PyList_GET_ITEM(series.ptr(), static_cast<Py_ssize_t>(i));
          py::object result = python_rule(seq, op[i]);
          if (result.is(py::none()) && op[i] != kPercentilesOp) {
            native.push_back(i);
            native_ops.push_back(op[i]);
            native_ema.push_back(ema[i]);
            native_series.append(py::reinterpret_borrow<py::object>(seq));
            continue;
          }
          PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), result.release().ptr());
        }
        if (!native.empty()) {
          std::vector<double> values;
          std::vector<int64_t> offsets;
          flatten_series(native_series, values, offsets);
          std::vector<double> reduced(native.size());
          fs::series::reduce(values.data(), offsets.data(), native_ops.data(), native_ema.data(),
                             static_cast<int64_t>(native.size()), reduced.data());
          for (size_t j = 0; j < native.size(); ++j) {
            PyObject* x = PyFloat_FromDouble(reduced[j]);
            if (!x) throw py::error_already_set();
            PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(native[j]), x);
          }
        }
        for (size_t i = 0; i < n; ++i)  // percentiles: None, for the caller
          if (!PyList_GET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i))) {
            Py_INCREF(Py_None);
            PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), Py_None);
          }
        return out;
      },
      py::arg("series"), py::arg("ops"), py::arg("ema_coeffs"),
      "Reduces each value sequence by its op (bytes; see series.h) with its EMA coefficient "
      "(array of doubles): a list of results, python ints kept where RLlib keeps them, "
      "None for percentiles (op 6).");

  m.def(
      "series_percentiles",
      [](const py::sequence& series, const std::vector<std::vector<double>>& q) {
        std::vector<double> values;
        std::vector<int64_t> offsets;
        flatten_series(series, values, offsets);
        require(q.size() + 1 == offsets.size(), "series_percentiles: one q list per series");
        std::vector<int64_t> q_offsets(1, 0);
        std::vector<double> q_flat;
        for (const auto& qs : q) {
          q_flat.insert(q_flat.end(), qs.begin(), qs.end());
          q_offsets.push_back(static_cast<int64_t>(q_flat.size()));
        }
        std::vector<double> out(q_flat.size());
        fs::series::percentiles(values.data(), offsets.data(), static_cast<int64_t>(q.size()),
                                q_flat.data(), q_offsets.data(), out.data());
        return out;
      },
      py::arg("series"), py::arg("q"),
      "Linear-interpolation percentiles of each value list's non-NaN values (flat list).");

  m.def(
      "series_merge_parallel",
      [](const py::list& series, const py::buffer& group_first, const py::buffer& ops,
         const py::buffer& windows) {
        // The value sequences stay python objects: the merge reads only the values its
        // walk reaches (see series.h). Borrowed references: the list holds them, and
        // the GIL-holding caller cannot change it under us.
        const Py_ssize_t n_series = PyList_GET_SIZE(series.ptr());
        std::vector<PyObject*> seqs(static_cast<size_t>(n_series));
        std::vector<int64_t> lens(static_cast<size_t>(n_series));
        for (Py_ssize_t i = 0; i < n_series; ++i) {
          PyObject* seq = PyList_GET_ITEM(series.ptr(), i);
          const Py_ssize_t len = PySequence_Size(seq);
          if (len < 0) throw py::error_already_set();
          seqs[static_cast<size_t>(i)] = seq;
          lens[static_cast<size_t>(i)] = len;
        }
        const auto n = static_cast<size_t>(py::len(ops));
        const int64_t* first = buffer_of<int64_t>(group_first, n + 1, "group_first");
        const int8_t* op = buffer_of<int8_t>(ops, n, "ops");
        const int64_t* window = buffer_of<int64_t>(windows, n, "windows");
        require(n == 0 || (first[0] == 0 && first[n] == n_series),
                "series_merge_parallel: groups must cover the series");
        auto item = [&seqs](int64_t s, int64_t k) {  // a new reference
          PyObject* seq = seqs[static_cast<size_t>(s)];
          PyObject* got;
          if (PyList_CheckExact(seq)) {
            got = PyList_GET_ITEM(seq, k);
            Py_INCREF(got);
          } else {
            got = PySequence_GetItem(seq, k);
            if (!got) throw py::error_already_set();
          }
          return py::reinterpret_steal<py::object>(got);
        };
        auto read = [&item](int64_t s, int64_t k) {
          const py::object held = item(s, k);
          PyObject* x = held.ptr();
          const double v = PyFloat_CheckExact(x) ? PyFloat_AS_DOUBLE(x) : PyFloat_AsDouble(x);
          if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
          return fs::series::Value{v, PyLong_CheckExact(x) != 0};
        };
        const fs::series::MergeOut merged = fs::series::merge_parallel(
            read, lens.data(), first, static_cast<int64_t>(n), op, window);
        // Sourced values are the original objects (ints, list items), computed ones floats.
        return merged_lists(merged, [&item](int64_t s, int64_t k, double) { return item(s, k); });
      },
      py::arg("series"), py::arg("group_first"), py::arg("ops"), py::arg("windows"),
      "Parallel merge of groups of value sequences (group_first and windows: int64 arrays, "
      "ops: bytes): one list per group, a windowed one at most `window` long; values taken "
      "over as they are are the original objects.");

  m.def(
      "series_merge_blocks",
      [](const py::list& blocks, const py::buffer& index, const py::buffer& ops,
         const py::buffer& windows) {
        // Each rank's block (sync_logger's float64 payload): lens[n] | previous[n] |
        // before_previous[n] | flags[n] | values. index[u * n_ranks + r]: key u's place
        // on rank r, or -1 (absent there). Values flagged INTS come out as ints.
        const auto n_ranks = static_cast<size_t>(PyList_GET_SIZE(blocks.ptr()));
        const auto n_keys = static_cast<size_t>(py::len(ops));
        const int64_t* where = buffer_of<int64_t>(index, n_keys * n_ranks, "index");
        const int8_t* op = buffer_of<int8_t>(ops, n_keys, "ops");
        const int64_t* window = buffer_of<int64_t>(windows, n_keys, "windows");
        std::vector<py::buffer_info> held;
        std::vector<RankBlock> ranks;
        for (size_t r = 0; r < n_ranks; ++r) {
          held.push_back(py::reinterpret_borrow<py::buffer>(PyList_GET_ITEM(blocks.ptr(), r))
                             .request());
          ranks.push_back(rank_block(held.back()));
        }
        std::vector<int64_t> lens(n_keys * n_ranks), group_first(n_keys + 1);
        std::vector<const double*> data(n_keys * n_ranks);
        std::vector<bool> ints(n_keys * n_ranks);
        size_t s = 0;
        for (size_t u = 0; u < n_keys; ++u) {
          group_first[u] = static_cast<int64_t>(s);
          for (size_t r = 0; r < n_ranks; ++r) {
            const int64_t i = where[u * n_ranks + r];
            if (i < 0) continue;
            const RankBlock& b = ranks[r];
            require(i < b.n, "series_merge_blocks: index past a rank's keys");
            lens[s] = b.lens[i];
            data[s] = b.values + b.starts[static_cast<size_t>(i)];
            ints[s] = (b.flags[i] & kFlagInts) != 0;
            ++s;
          }
        }
        group_first[n_keys] = static_cast<int64_t>(s);
        auto read = [&](int64_t sr, int64_t k) {
          return fs::series::Value{data[static_cast<size_t>(sr)][k], ints[static_cast<size_t>(sr)]};
        };
        const fs::series::MergeOut merged = fs::series::merge_parallel(
            read, lens.data(), group_first.data(), static_cast<int64_t>(n_keys), op, window);
        // A sourced value is read again: a list's (kNone) items were never read.
        return merged_lists(merged, [&](int64_t sr, int64_t k, double) {
          const auto at = static_cast<size_t>(sr);
          const double v = data[at][k];
          return py::reinterpret_steal<py::object>(ints[at] ? PyLong_FromDouble(v)
                                                            : PyFloat_FromDouble(v));
        });
      },
      py::arg("blocks"), py::arg("index"), py::arg("ops"), py::arg("windows"),
      "Parallel merge of every key over the ranks' float64 blocks, read in place: one list "
      "per key (see fusedstats.distributed._wire).");

  m.def(
      "series_flatten",
      [](const py::list& series) {
        // Every value as float64 (0.0 where it is no number that float64 holds exactly),
        // each series' length, and what it holds: 1 floats, 2 ints of at most 2**53,
        // 4 anything else (bigger ints, tensors, other objects).
        const Py_ssize_t n = PyList_GET_SIZE(series.ptr());
        std::vector<double> values;
        std::vector<int64_t> lens(static_cast<size_t>(n));
        std::string kinds(static_cast<size_t>(n), '\0');
        for (Py_ssize_t i = 0; i < n; ++i) {
          const size_t before = values.size();
          char kind = 0;
          for_each_item(PyList_GET_ITEM(series.ptr(), i),
                        [&](PyObject* x) { kind |= number_kind(x, values); });
          lens[static_cast<size_t>(i)] = static_cast<int64_t>(values.size() - before);
          kinds[static_cast<size_t>(i)] = kind;
        }
        return py::make_tuple(
            py::bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double)),
            lens, py::bytes(kinds));
      },
      py::arg("series"),
      "Flattens value sequences for sync_logger's payload: (float64 bytes, lengths, kinds).");

  m.def(
      "numbers_flatten",
      [](const py::list& items) {
        // series_flatten's conversion, item by item: (float64 bytes, a kind per item).
        const Py_ssize_t n = PyList_GET_SIZE(items.ptr());
        std::vector<double> values;
        std::string kinds(static_cast<size_t>(n), '\0');
        for (Py_ssize_t i = 0; i < n; ++i)
          kinds[static_cast<size_t>(i)] = number_kind(PyList_GET_ITEM(items.ptr(), i), values);
        return py::make_tuple(
            py::bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double)),
            py::bytes(kinds));
      },
      py::arg("items"), "Each item as float64 and its kind (see series_flatten).");

  m.def(
      "gather_scalars",
      [](const py::buffer& table) {
        // table: (data pointer, ScalarType) int64 pairs of host scalars, checked by the
        // caller (fusedstats.logger.gather): every pointer is a whole element in memory
        // its tensor's storage holds.
        static_assert(sizeof(fs::ScalarRef) == 2 * sizeof(int64_t), "ScalarRef is two int64");
        const py::buffer_info info = table.request();
        require(info.ndim == 1 && info.itemsize == static_cast<py::ssize_t>(sizeof(int64_t)) &&
                    info.size % 2 == 0 &&
                    (info.size <= 1 || info.strides[0] == static_cast<py::ssize_t>(sizeof(int64_t))),
                "gather_scalars: the table is a contiguous 1-D int64 buffer of (pointer, type) "
                "pairs");
        const auto n = static_cast<int64_t>(info.size / 2);
        std::vector<double> out(static_cast<size_t>(n));
        fs::gather_scalars(static_cast<const fs::ScalarRef*>(info.ptr), n, out.data());
        return out;
      },
      py::arg("table"),
      "The float64 values of host scalars, from (pointer, type) int64 pairs; a list.");

  // Rollout info flattener: reads Python info dicts, so it lives in csrc/cpython (the
  // file header says why); bound here like the kernels, nothing more.
  using fs::cpython::InfoFlattener;
  // The plain `type` metaclass: the class needs no static properties, and its stub
  // (_core.pyi) then matches what stubtest sees.
  py::class_<InfoFlattener>(m, "InfoFlattener", py::metaclass(reinterpret_cast<PyObject*>(&PyType_Type)))
      .def(py::init<py::object, py::object>(), py::arg("classify_type"), py::arg("leaf_array"))
      .def("walk", &InfoFlattener::walk, py::arg("infos"))
      .def("finish", &InfoFlattener::finish, py::arg("host"), py::arg("lengths"))
      .def("intern", &InfoFlattener::intern, py::arg("path"))
      .def("forget", &InfoFlattener::forget, py::arg("keep_periods"))
      .def_property_readonly("ids", &InfoFlattener::ids)
      .def_property_readonly("names", &InfoFlattener::names)
      .def_property_readonly("node_count", &InfoFlattener::node_count);

  m.def("set_num_threads", &fs::cpu::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &fs::cpu::get_num_threads);
  m.def("simd_levels", &fs::cpu::simd_levels);
  m.def("simd_level", &fs::cpu::simd_level);
  m.def("set_simd_level", &fs::cpu::set_simd_level, py::arg("name"));

  m.def("build_info", []() {
    py::dict info;
    info["compiler"] = compiler();
    info["openmp"] = fs::cpu::openmp_enabled();
    info["simd_levels"] = fs::cpu::simd_levels();
    info["cxx_flags"] = std::string(FUSEDSTATS_CXX_FLAGS);
    info["chunk_elems"] = fs::cpu::kChunkElems;
    info["tile_elems"] = fs::cpu::kTileElems;
    info["cuda_status"] = std::string(FUSEDSTATS_CUDA_STATUS);
    return info;
  });

  py::list columns;
  for (const char* name : {"numel", "n_nan", "n_inf", "n_zero", "n_finite", "sum", "mean", "var",
                           "var_pop", "std", "min", "max", "abs_max", "l1", "norm",
                           "n_dormant_rows"})
    columns.append(name);
  m.attr("COLUMNS") = py::tuple(columns);
  m.attr("NUM_COLUMNS") = static_cast<int>(fs::kNumColumns);
  py::list ext_columns;
  for (const char* name :
       {"kurtosis", "min_abs_nonzero", "dynamic_range_log2", "underflow_bf16", "overflow_bf16",
        "underflow_fp16", "overflow_fp16", "underflow_e4m3", "overflow_e4m3", "underflow_e5m2",
        "overflow_e5m2"})
    ext_columns.append(name);
  m.attr("EXTENDED_COLUMNS") = py::tuple(ext_columns);
  m.attr("NUM_EXT_COLUMNS") = static_cast<int>(fs::kNumExtColumns);
  m.attr("HIST_BINS") = fs::kHistBins;
  m.attr("HIST_MIN_EXP") = fs::kHistMinExp;
  m.attr("HIST_MAX_EXP") = fs::kHistMaxExp;
  m.attr("SERIES_OPS") = py::dict(py::arg("mean") = static_cast<int>(fs::series::kMean),
                                  py::arg("ema") = static_cast<int>(fs::series::kEma),
                                  py::arg("min") = static_cast<int>(fs::series::kMin),
                                  py::arg("max") = static_cast<int>(fs::series::kMax),
                                  py::arg("sum") = static_cast<int>(fs::series::kSum),
                                  py::arg("none") = static_cast<int>(fs::series::kNone));
  m.attr("DTYPE_CODES") = py::dict(py::arg("float32") = static_cast<int>(fs::kFloat32),
                                   py::arg("float64") = static_cast<int>(fs::kFloat64),
                                   py::arg("float16") = static_cast<int>(fs::kFloat16),
                                   py::arg("bfloat16") = static_cast<int>(fs::kBFloat16),
                                   py::arg("float8_e4m3fn") = static_cast<int>(fs::kFloat8E4M3),
                                   py::arg("float8_e5m2") = static_cast<int>(fs::kFloat8E5M2));
}
