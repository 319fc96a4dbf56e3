// fusedstats._cuda_emu: the CUDA kernels (csrc/cuda/kernel_body.h) run on the host, for
// tests only. Same functions and arguments as fusedstats._cuda, on host pointers; the
// `stream` argument is ignored. Binds only: the logic is kernel_body.h.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../bindings/descriptors.h"
#include "exec_host.h"
#include "fusedstats/denormals.h"
#include "fusedstats/plan.h"

namespace py = pybind11;
namespace fs = fusedstats;

namespace fusedstats {
namespace emu {

int64_t g_outcomes[kNumSpanOutcomes] = {0, 0, 0};

namespace {

template <class P>
const uint8_t* bytes(P p) {
  return reinterpret_cast<const uint8_t*>(p);
}
template <class P>
uint8_t* mut_bytes(P p) {
  return reinterpret_cast<uint8_t*>(p);
}

}  // namespace
}  // namespace emu
}  // namespace fusedstats

PYBIND11_MODULE(_cuda_emu, m) {
  namespace emu = fs::emu;
  namespace cu = fs::cuda;
  m.doc() =
      "The CUDA kernels of fusedstats run on the host (tests only): same arguments as "
      "fusedstats._cuda, host pointers.";

  m.def(
      "plan",
      [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& numels,
         const std::vector<int32_t>& dtypes, const std::vector<int64_t>& row_lens) {
        return fs::bindings::plan_table(ptrs, numels, dtypes, row_lens, cu::kChunkElems);
      },
      py::arg("ptrs"), py::arg("numels"), py::arg("dtypes"), py::arg("row_lens"));

  m.def(
      "workspace_bytes",
      [](int64_t n_chunks, int64_t n_tensors, bool extended) {
        return cu::workspace_layout(n_chunks, n_tensors, extended).total;
      },
      py::arg("n_chunks"), py::arg("n_tensors"), py::arg("extended"));
  m.def("finalize_workspace_bytes", &cu::finalize_workspace_size, py::arg("extended"));

  m.def(
      "launch_stats",
      [](uintptr_t table_ptr, int64_t n_chunks, int64_t n_tensors, bool has_rows, bool extended,
         uintptr_t workspace_ptr, double dormant_threshold, uintptr_t out_ptr, uintptr_t hist_ptr,
         uintptr_t /*stream*/, bool rearm) {
        const fs::ExactDenormals exact;
        emu::HostLauncher l;
        l.rearm = rearm;
        return cu::run_tensor_pass(l, emu::bytes(table_ptr), n_chunks, n_tensors, has_rows, extended,
                                   emu::mut_bytes(workspace_ptr), dormant_threshold, cu::kModeStats,
                                   reinterpret_cast<double*>(out_ptr),
                                   reinterpret_cast<int64_t*>(hist_ptr), nullptr);
      },
      py::arg("table_ptr"), py::arg("n_chunks"), py::arg("n_tensors"), py::arg("has_rows"),
      py::arg("extended"), py::arg("workspace_ptr"), py::arg("dormant_threshold"),
      py::arg("out_ptr"), py::arg("hist_ptr"), py::arg("stream"), py::arg("rearm") = true,
      "memset + chunk pass + finishing pass; rearm=False leaves out the memset (tests).");

  m.def(
      "launch_records",
      [](uintptr_t table_ptr, int64_t n_chunks, int64_t n_tensors, bool has_rows, bool extended,
         uintptr_t workspace_ptr, double dormant_threshold, uintptr_t records_ptr, bool accumulate,
         uintptr_t /*stream*/) {
        const fs::ExactDenormals exact;
        emu::HostLauncher l;
        return cu::run_tensor_pass(l, emu::bytes(table_ptr), n_chunks, n_tensors, has_rows, extended,
                                   emu::mut_bytes(workspace_ptr), dormant_threshold,
                                   accumulate ? cu::kModeAccumulate : cu::kModeRecords, nullptr,
                                   nullptr, emu::mut_bytes(records_ptr));
      },
      py::arg("table_ptr"), py::arg("n_chunks"), py::arg("n_tensors"), py::arg("has_rows"),
      py::arg("extended"), py::arg("workspace_ptr"), py::arg("dormant_threshold"),
      py::arg("records_ptr"), py::arg("accumulate"), py::arg("stream"));

  m.def(
      "launch_finalize",
      [](uintptr_t records_ptr, int64_t n, bool extended, uintptr_t workspace_ptr, uintptr_t out_ptr,
         uintptr_t hist_ptr, uintptr_t /*stream*/) {
        const fs::ExactDenormals exact;
        emu::HostLauncher l;
        return cu::run_finalize(l, emu::bytes(records_ptr), n, extended, emu::mut_bytes(workspace_ptr),
                                reinterpret_cast<double*>(out_ptr),
                                reinterpret_cast<int64_t*>(hist_ptr));
      },
      py::arg("records_ptr"), py::arg("n"), py::arg("extended"), py::arg("workspace_ptr"),
      py::arg("out_ptr"), py::arg("hist_ptr"), py::arg("stream"));

  m.def(
      "launch_merge",
      [](uintptr_t src_ptr, int64_t n_sources, int64_t n, bool extended, uintptr_t include_ptr,
         uintptr_t dst_ptr, uintptr_t /*stream*/) {
        const fs::ExactDenormals exact;
        emu::HostLauncher l;
        return cu::run_merge(l, emu::bytes(src_ptr), n_sources, n, extended, emu::bytes(include_ptr),
                             emu::mut_bytes(dst_ptr));
      },
      py::arg("src_ptr"), py::arg("n_sources"), py::arg("n"), py::arg("extended"),
      py::arg("include_ptr"), py::arg("dst_ptr"), py::arg("stream"));

  m.def("probe", []() { return 0; }, "Always 0: the emulation runs anywhere.");
  m.def(
      "error_string", [](int code) { return "emulated launch error " + std::to_string(code); },
      py::arg("code"));
  m.attr("UNUSABLE_CODES") = py::tuple();

  m.def("span_outcomes", []() {
    py::dict d;
    d["fast"] = emu::g_outcomes[fs::kSpanFast];
    d["two_pass"] = emu::g_outcomes[fs::kSpanTwoPass];
    d["slow"] = emu::g_outcomes[fs::kSpanSlow];
    return d;
  }, "How many thread spans took each path since reset_span_outcomes().");
  m.def("reset_span_outcomes", []() {
    for (auto& c : emu::g_outcomes) c = 0;
  });

  m.attr("CHUNK_ELEMS") = cu::kChunkElems;
  m.attr("THREADS") = cu::kThreads;
  m.attr("SPAN_MAX_CANCEL") = fs::kSpanMaxCancel;
  m.attr("SPAN_EXT_MAX_CANCEL") = fs::kSpanExtMaxCancel;
}
