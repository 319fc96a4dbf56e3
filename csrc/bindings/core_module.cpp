// fusedstats._core: binds the CPU kernel. Converts arguments, releases the GIL,
// calls the core; no arithmetic here. Validation lives in fusedstats.kernels.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../cpu/cpu_kernels.h"
#include "../cpython/info_flattener.h"
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

std::vector<fs::TensorDesc> descriptors(const std::vector<uintptr_t>& ptrs,
                                        const std::vector<int64_t>& numels,
                                        const std::vector<int32_t>& dtypes,
                                        const std::vector<int64_t>& row_lens) {
  const size_t n = ptrs.size();
  if (numels.size() != n || dtypes.size() != n || row_lens.size() != n)
    throw py::value_error("ptrs, numels, dtypes and row_lens must have the same length");
  std::vector<fs::TensorDesc> out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = fs::TensorDesc{reinterpret_cast<const void*>(ptrs[i]), numels[i], dtypes[i],
                            row_lens[i]};
  return out;
}

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
    PyObject* seq = one.ptr();
    if (PyList_CheckExact(seq) || PyTuple_CheckExact(seq)) {
      const Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
      PyObject** items = PySequence_Fast_ITEMS(seq);
      for (Py_ssize_t k = 0; k < len; ++k) take(items[k]);
    } else {
      // A deque (windowed Stats): iterate it in place. PySequence_Fast would copy it
      // into a new list first, which measured 8x slower here.
      py::object it = py::reinterpret_steal<py::object>(PyObject_GetIter(seq));
      if (!it) throw py::error_already_set();
      while (PyObject* item = PyIter_Next(it.ptr())) {
        py::object hold = py::reinterpret_steal<py::object>(item);
        take(item);
      }
      if (PyErr_Occurred()) throw py::error_already_set();
    }
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

  m.def("record_bytes", &fs::cpu::record_bytes, py::arg("extended"),
        "Bytes of one tensor's mergeable record.");

  m.def(
      "series_reduce",
      [](const py::sequence& series, const py::buffer& ops, const py::buffer& ema_coeffs) {
        std::vector<double> values;
        std::vector<int64_t> offsets;
        flatten_series(series, values, offsets);
        const size_t n = offsets.size() - 1;
        const int8_t* op = buffer_of<int8_t>(ops, n, "series_reduce ops");
        const double* ema = buffer_of<double>(ema_coeffs, n, "series_reduce ema_coeffs");
        std::vector<double> out(n);
        fs::series::reduce(values.data(), offsets.data(), op, ema, static_cast<int64_t>(n),
                           out.data());
        return out;
      },
      py::arg("series"), py::arg("ops"), py::arg("ema_coeffs"),
      "Reduces each value sequence by its op (bytes; see series.h) with its EMA coefficient "
      "(array of doubles); returns a list of floats.");

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
      [](const py::sequence& series, const py::buffer& group_first, const py::buffer& ops,
         const py::buffer& windows) {
        // The value sequences stay python objects: the merge reads only the values its
        // walk reaches (see series.h), each converted here.
        // A list of sequences (fast: borrowed references, kept alive by the list,
        // which the GIL-holding caller cannot change under us).
        const py::list outer = py::list(series);
        const Py_ssize_t n_series = PyList_GET_SIZE(outer.ptr());
        std::vector<PyObject*> seqs(static_cast<size_t>(n_series));
        std::vector<int64_t> lens(static_cast<size_t>(n_series));
        for (Py_ssize_t i = 0; i < n_series; ++i) {
          PyObject* seq = PyList_GET_ITEM(outer.ptr(), i);
          const Py_ssize_t len = PySequence_Size(seq);
          if (len < 0) throw py::error_already_set();
          seqs[static_cast<size_t>(i)] = seq;
          lens[static_cast<size_t>(i)] = len;
        }
        const py::ssize_t n_groups = py::len(ops);
        const auto n = static_cast<size_t>(n_groups);
        const int64_t* first = buffer_of<int64_t>(group_first, n + 1, "group_first");
        const int8_t* op = buffer_of<int8_t>(ops, n, "ops");
        const int64_t* window = buffer_of<int64_t>(windows, n, "windows");
        require(n == 0 || (first[0] == 0 && first[n] == n_series),
                "series_merge_parallel: groups must cover the series");
        auto read = [&seqs](int64_t s, int64_t k) {
          PyObject* seq = seqs[static_cast<size_t>(s)];
          py::object held;
          PyObject* item;
          if (PyList_CheckExact(seq)) {
            item = PyList_GET_ITEM(seq, k);
          } else {
            held = py::reinterpret_steal<py::object>(PySequence_GetItem(seq, k));
            if (!held) throw py::error_already_set();
            item = held.ptr();
          }
          const bool is_int = PyLong_CheckExact(item);
          const double x = PyFloat_CheckExact(item) ? PyFloat_AS_DOUBLE(item) : PyFloat_AsDouble(item);
          if (x == -1.0 && PyErr_Occurred()) throw py::error_already_set();
          return fs::series::Value{x, is_int};
        };
        fs::series::MergeOut merged = fs::series::merge_parallel(
            read, lens.data(), first, static_cast<int64_t>(n), op, window);
        return py::make_tuple(merged.source, merged.value, merged.offsets);
      },
      py::arg("series"), py::arg("group_first"), py::arg("ops"), py::arg("windows"),
      "Parallel merge of groups of value sequences (group_first and windows: int64 arrays, "
      "ops: bytes): (sources within the group or -1, values, group offsets).");

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
  m.attr("DTYPE_CODES") = py::dict(py::arg("float32") = static_cast<int>(fs::kFloat32),
                                   py::arg("float64") = static_cast<int>(fs::kFloat64),
                                   py::arg("float16") = static_cast<int>(fs::kFloat16),
                                   py::arg("bfloat16") = static_cast<int>(fs::kBFloat16),
                                   py::arg("float8_e4m3fn") = static_cast<int>(fs::kFloat8E4M3),
                                   py::arg("float8_e5m2") = static_cast<int>(fs::kFloat8E5M2));
}
