#include "bindings/common.hpp"
#include "core/stream.hpp"

namespace dropkit::py_bind {

void register_runtime(py::module_& m) {
    m.attr("STREAM_VERSION") = kStreamVersion;
    m.attr("__version__") = DROPKIT_VERSION;
    m.attr("PARALLEL_CUTOFF") = kParallelCutoff;
    m.attr("STREAMING_THRESHOLD_BYTES") = streaming_threshold_bytes();
    m.def("default_threads", &default_threads, "OMP_NUM_THREADS, or the number of cores.");
    m.def("simd_best", [] { return std::string(simd_name(simd_best())); },
          "The widest SIMD target this CPU and build support.");
    m.def("simd_available", [](const std::string& name) {
              if (name == "scalar") return true;
              if (name == "avx2") return simd_available(Simd::avx2);
              if (name == "avx512") return simd_available(Simd::avx512);
              throw py::value_error("unknown SIMD target '" + name + "' (expected scalar, avx2 or avx512)");
          },
          py::arg("name"), "Whether a SIMD target is compiled in and supported by this CPU.");
}

}  // namespace dropkit::py_bind
