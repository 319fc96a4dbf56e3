// fusedstats._core: binds the CPU kernel. Converts arguments, releases the GIL,
// calls the core; no arithmetic here. Validation lives in fusedstats.kernels.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../cpu/cpu_kernels.h"

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
