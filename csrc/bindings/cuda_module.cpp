// fusedstats._cuda: binds the CUDA launcher. Converts arguments, releases the GIL,
// maps CUDA errors to RuntimeError; no arithmetic here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../cuda/cuda_kernels.h"
#include "../cuda/gather.h"

namespace py = pybind11;
namespace fs = fusedstats;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fusedstats CUDA kernels (private; use the fusedstats package).";

  m.def(
      "plan",
      [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels,
         const std::vector<int32_t>& dtypes, const std::vector<int64_t>& row_lens) {
        const size_t n = ptrs.size();
        if (numels.size() != n || dtypes.size() != n || row_lens.size() != n)
          throw py::value_error("ptrs, numels, dtypes and row_lens must have the same length");
        std::vector<fs::TensorDesc> descs(n);
        for (size_t i = 0; i < n; ++i)
          descs[i] = fs::TensorDesc{reinterpret_cast<const void*>(ptrs[i]), numels[i], dtypes[i],
                                    row_lens[i]};
        const fs::Plan plan =
            fs::make_plan(descs.data(), static_cast<int64_t>(n), fs::cuda::kChunkElems);
        const std::vector<uint8_t> bytes = fs::cuda::table_bytes(plan);
        return py::make_tuple(
            py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
            static_cast<int64_t>(plan.chunks.size()));
      },
      py::arg("ptrs"), py::arg("numels"), py::arg("dtypes"), py::arg("row_lens"),
      "Chunk table for these device buffers: (table bytes to copy to the device, n_chunks).");

  m.def("workspace_bytes", &fs::cuda::workspace_bytes, py::arg("n_chunks"), py::arg("n_tensors"),
        "Bytes of zero-initialized device workspace the launch needs.");

  m.def(
      "launch",
      [](int device, uintptr_t table_ptr, int64_t n_chunks, int64_t n_tensors, bool has_rows,
         uintptr_t workspace_ptr, double dormant_threshold, uintptr_t out_ptr, uintptr_t stream) {
        std::string err;
        {
          py::gil_scoped_release release;
          err = fs::cuda::launch(device, reinterpret_cast<const void*>(table_ptr), n_chunks,
                                 n_tensors, has_rows, reinterpret_cast<void*>(workspace_ptr),
                                 dormant_threshold, reinterpret_cast<double*>(out_ptr), stream);
        }
        if (!err.empty()) throw std::runtime_error("fusedstats CUDA launch failed: " + err);
      },
      py::arg("device"), py::arg("table_ptr"), py::arg("n_chunks"), py::arg("n_tensors"),
      py::arg("has_rows"), py::arg("workspace_ptr"), py::arg("dormant_threshold"), py::arg("out_ptr"),
      py::arg("stream"), "Two launches on `stream`; no host sync.");

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
    info["chunk_elems"] = fs::cuda::kChunkElems;
    return info;
  });
}
