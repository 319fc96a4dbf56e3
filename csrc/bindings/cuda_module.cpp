// fusedstats._cuda: binds the CUDA launcher. Converts arguments; no arithmetic here.
// Launch functions return the cudaError_t value (0: success) for Python to map (a driver
// or GPU this build cannot run on is not an error there: it falls back).
//
// The GIL is held while a launch sequence is enqueued (a few microseconds, no sync):
// two Python threads then cannot interleave their memset/chunk/finish sequences on one
// stream (review F7).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../cuda/cuda_kernels.h"
#include "../cuda/gather.h"
#include "descriptors.h"

namespace py = pybind11;
namespace fs = fusedstats;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fusedstats CUDA kernels (private; use the fusedstats package).";

  m.def(
      "plan",
      [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels,
         const std::vector<int32_t>& dtypes, const std::vector<int64_t>& row_lens) {
        return fs::bindings::plan_table(ptrs, numels, dtypes, row_lens, fs::cuda::chunk_elems());
      },
      py::arg("ptrs"), py::arg("numels"), py::arg("dtypes"), py::arg("row_lens"),
      "Chunk table for these device buffers: (table bytes to copy to the device, n_chunks).");

  m.def("workspace_bytes", &fs::cuda::workspace_bytes, py::arg("n_chunks"), py::arg("n_tensors"),
        py::arg("extended"),
        "Bytes of device workspace launch_stats/launch_records need (uninitialized is fine).");
  m.def("finalize_workspace_bytes", &fs::cuda::finalize_workspace_bytes, py::arg("extended"),
        "Bytes of device workspace launch_finalize needs (uninitialized is fine).");

  m.def(
      "launch_stats",
      [](uintptr_t table_ptr, int64_t n_chunks, int64_t n_tensors, bool has_rows, bool extended,
         uintptr_t workspace_ptr, double dormant_threshold, uintptr_t out_ptr, uintptr_t hist_ptr,
         uintptr_t stream) {
        return fs::cuda::launch_stats(reinterpret_cast<const void*>(table_ptr), n_chunks, n_tensors,
                                      has_rows, extended, reinterpret_cast<void*>(workspace_ptr),
                                      dormant_threshold, reinterpret_cast<double*>(out_ptr),
                                      reinterpret_cast<int64_t*>(hist_ptr), stream);
      },
      py::arg("table_ptr"), py::arg("n_chunks"), py::arg("n_tensors"), py::arg("has_rows"),
      py::arg("extended"), py::arg("workspace_ptr"), py::arg("dormant_threshold"),
      py::arg("out_ptr"), py::arg("hist_ptr"), py::arg("stream"),
      "memset + 2 launches on `stream` (current device); no host sync. Returns a cudaError_t.");

  m.def(
      "launch_records",
      [](uintptr_t table_ptr, int64_t n_chunks, int64_t n_tensors, bool has_rows, bool extended,
         uintptr_t workspace_ptr, double dormant_threshold, uintptr_t records_ptr, bool accumulate,
         uintptr_t stream) {
        return fs::cuda::launch_records(reinterpret_cast<const void*>(table_ptr), n_chunks,
                                        n_tensors, has_rows, extended,
                                        reinterpret_cast<void*>(workspace_ptr), dormant_threshold,
                                        reinterpret_cast<void*>(records_ptr), accumulate, stream);
      },
      py::arg("table_ptr"), py::arg("n_chunks"), py::arg("n_tensors"), py::arg("has_rows"),
      py::arg("extended"), py::arg("workspace_ptr"), py::arg("dormant_threshold"),
      py::arg("records_ptr"), py::arg("accumulate"), py::arg("stream"),
      "Per-tensor mergeable records (overwritten, or merged into with accumulate).");

  m.def(
      "launch_finalize",
      [](uintptr_t records_ptr, int64_t n, bool extended, uintptr_t workspace_ptr, uintptr_t out_ptr,
         uintptr_t hist_ptr, uintptr_t stream) {
        return fs::cuda::launch_finalize(reinterpret_cast<const void*>(records_ptr), n, extended,
                                         reinterpret_cast<void*>(workspace_ptr),
                                         reinterpret_cast<double*>(out_ptr),
                                         reinterpret_cast<int64_t*>(hist_ptr), stream);
      },
      py::arg("records_ptr"), py::arg("n"), py::arg("extended"), py::arg("workspace_ptr"),
      py::arg("out_ptr"), py::arg("hist_ptr"), py::arg("stream"),
      "Rows (and histograms) of n records plus the global row.");

  m.def(
      "launch_merge",
      [](uintptr_t src_ptr, int64_t n_sources, int64_t n, bool extended, uintptr_t include_ptr,
         uintptr_t dst_ptr, uintptr_t stream) {
        return fs::cuda::launch_merge(reinterpret_cast<const void*>(src_ptr), n_sources, n, extended,
                                      reinterpret_cast<const uint8_t*>(include_ptr),
                                      reinterpret_cast<void*>(dst_ptr), stream);
      },
      py::arg("src_ptr"), py::arg("n_sources"), py::arg("n"), py::arg("extended"),
      py::arg("include_ptr"), py::arg("dst_ptr"), py::arg("stream"),
      "dst[t] = src[s][t] merged over s in order where include[s][t] (0 pointer: all).");

  m.def("probe", &fs::cuda::probe,
        "Loads the kernels for the current device without launching; a cudaError_t.");
  m.def("error_string", &fs::cuda::error_string, py::arg("code"));
  m.attr("UNUSABLE_CODES") = py::cast(fs::cuda::unusable_codes());

  // The MetricsLogger's gather of logged scalars (csrc/cuda/gather.cu).
  m.def(
      "gather_scalars",
      [](uintptr_t table_ptr, int64_t n, uintptr_t out_ptr, uintptr_t stream) {
        std::string err;
        {
          py::gil_scoped_release release;
          err = fs::cuda::gather_launch(reinterpret_cast<const void*>(table_ptr), n,
                                        reinterpret_cast<double*>(out_ptr), stream);
        }
        if (!err.empty()) throw std::runtime_error("fusedstats CUDA gather failed: " + err);
      },
      py::arg("table_ptr"), py::arg("n"), py::arg("out_ptr"), py::arg("stream"),
      "One gather launch on `stream` of the current device: n (pointer, type) device "
      "entries -> n float64 at out_ptr; no host sync.");

  m.def("build_info", []() {
    py::dict info;
    info["cuda_version"] = std::string(FUSEDSTATS_CUDA_VERSION);
    info["cuda_archs"] = std::string(FUSEDSTATS_CUDA_ARCHS);
    info["chunk_elems"] = fs::cuda::chunk_elems();
    return info;
  });
}
