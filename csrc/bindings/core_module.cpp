// fusedstats._core: binds the CPU kernel. Converts arguments, releases the GIL,
// calls the core; no arithmetic here. Validation lives in fusedstats.kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../cpu/cpu_kernels.h"
#include "fusedstats/series.h"

namespace py = pybind11;
namespace fs = fusedstats;

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

template <class T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

void require(bool ok, const char* what) {
  if (!ok) throw py::value_error(what);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fusedstats CPU kernels (private; use the fusedstats package).";

  m.def(
      "tensor_stats",
      [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels,
         const std::vector<int32_t>& dtypes, const std::vector<int64_t>& row_lens,
         double dormant_threshold, uintptr_t out_ptr) {
        const auto descs = descriptors(ptrs, numels, dtypes, row_lens);
        py::gil_scoped_release release;
        fs::cpu::tensor_stats(descs.data(), static_cast<int64_t>(descs.size()),
                              dormant_threshold, reinterpret_cast<double*>(out_ptr));
      },
      py::arg("ptrs"), py::arg("numels"), py::arg("dtypes"), py::arg("row_lens"),
      py::arg("dormant_threshold"), py::arg("out_ptr"),
      "Statistics of contiguous host buffers into out ((n + 1) x NUM_COLUMNS float64, "
      "last row global). The caller guarantees valid pointers and sizes.");

  m.def(
      "series_reduce",
      [](const CArray<double>& values, const CArray<int64_t>& offsets, const CArray<int8_t>& ops,
         const CArray<double>& ema_coeffs) {
        const int64_t n = static_cast<int64_t>(ops.size());
        require(offsets.size() == n + 1 && ema_coeffs.size() == n,
                "series_reduce: offsets must have len(ops) + 1 entries, ema_coeffs len(ops)");
        require(n == 0 || offsets.at(n) <= static_cast<int64_t>(values.size()),
                "series_reduce: offsets point past the values");
        CArray<double> out(n);
        {
          py::gil_scoped_release release;
          fs::series::reduce(values.data(), offsets.data(), ops.data(), ema_coeffs.data(), n,
                             out.mutable_data());
        }
        return out;
      },
      py::arg("values"), py::arg("offsets"), py::arg("ops"), py::arg("ema_coeffs"),
      "Reduces every series values[offsets[i]:offsets[i+1]] by ops[i] (see series.h).");

  m.def(
      "series_percentiles",
      [](const CArray<double>& values, const CArray<int64_t>& offsets, const CArray<double>& q,
         const CArray<int64_t>& q_offsets) {
        const int64_t n = static_cast<int64_t>(offsets.size()) - 1;
        require(n >= 0 && q_offsets.size() == n + 1, "series_percentiles: offsets mismatch");
        require(n == 0 || (offsets.at(n) <= static_cast<int64_t>(values.size()) &&
                           q_offsets.at(n) <= static_cast<int64_t>(q.size())),
                "series_percentiles: offsets point past the data");
        CArray<double> out(q.size());
        {
          py::gil_scoped_release release;
          fs::series::percentiles(values.data(), offsets.data(), n, q.data(), q_offsets.data(),
                                  out.mutable_data());
        }
        return out;
      },
      py::arg("values"), py::arg("offsets"), py::arg("q"), py::arg("q_offsets"),
      "Linear-interpolation percentiles of each series' non-NaN values.");

  m.def(
      "series_merge_parallel",
      [](const CArray<double>& values, const CArray<int64_t>& offsets,
         const CArray<int64_t>& group_first, const CArray<int8_t>& ops,
         const CArray<int64_t>& windows) {
        const int64_t n_groups = static_cast<int64_t>(ops.size());
        const int64_t n_series = static_cast<int64_t>(offsets.size()) - 1;
        require(group_first.size() == n_groups + 1 && windows.size() == n_groups,
                "series_merge_parallel: group_first must have len(ops) + 1 entries");
        require(n_groups == 0 || (group_first.at(n_groups) <= n_series && n_series >= 0 &&
                                  offsets.at(n_series) <= static_cast<int64_t>(values.size())),
                "series_merge_parallel: offsets point past the data");
        fs::series::MergeOut merged;
        {
          py::gil_scoped_release release;
          merged = fs::series::merge_parallel(values.data(), offsets.data(), group_first.data(),
                                              n_groups, ops.data(), windows.data());
        }
        return py::make_tuple(CArray<int64_t>(static_cast<py::ssize_t>(merged.source.size()),
                                              merged.source.data()),
                              CArray<double>(static_cast<py::ssize_t>(merged.value.size()),
                                             merged.value.data()),
                              CArray<int64_t>(static_cast<py::ssize_t>(merged.offsets.size()),
                                              merged.offsets.data()));
      },
      py::arg("values"), py::arg("offsets"), py::arg("group_first"), py::arg("ops"),
      py::arg("windows"),
      "Parallel merge of groups of series: (source index or -1, value, group offsets).");

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
    return info;
  });

  py::list columns;
  for (const char* name : {"numel", "n_nan", "n_inf", "n_zero", "n_finite", "sum", "mean", "var",
                           "var_pop", "std", "min", "max", "abs_max", "l1", "norm",
                           "n_dormant_rows"})
    columns.append(name);
  m.attr("COLUMNS") = py::tuple(columns);
  m.attr("NUM_COLUMNS") = static_cast<int>(fs::kNumColumns);
  m.attr("DTYPE_CODES") = py::dict(py::arg("float32") = static_cast<int>(fs::kFloat32),
                                   py::arg("float64") = static_cast<int>(fs::kFloat64),
                                   py::arg("float16") = static_cast<int>(fs::kFloat16),
                                   py::arg("bfloat16") = static_cast<int>(fs::kBFloat16));
}
