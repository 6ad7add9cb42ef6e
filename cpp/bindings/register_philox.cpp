#include "bindings/common.hpp"

namespace dropkit::py_bind {

void register_philox(py::module_& m) {
    m.def(
        "philox4x32_10",
        [](const py::array_t<std::uint32_t, 0>& counter, const py::array_t<std::uint32_t, 0>& key,
           const std::string& simd) {
            if (counter.ndim() != 2 || counter.shape(1) != 4 || !c_contiguous(counter))
                throw py::value_error("counter must be a C-contiguous (n, 4) uint32 array");
            if (key.ndim() != 2 || key.shape(1) != 2 || !c_contiguous(key) || key.shape(0) != counter.shape(0))
                throw py::value_error("key must be a C-contiguous (n, 2) uint32 array with the counter's n");
            const Simd s = parse_simd(simd);
            const auto n = static_cast<std::size_t>(counter.shape(0));
            py::array_t<std::uint32_t> out({counter.shape(0), py::ssize_t{4}});
            const std::uint32_t* c = counter.data();
            const std::uint32_t* k = key.data();
            std::uint32_t* o = out.mutable_data();
            {
                py::gil_scoped_release release;
                philox4x32_10(c, k, o, n, s);
            }
            return out;
        },
        py::arg("counter"), py::arg("key"), py::arg("simd") = "",
        "Philox4x32-10 of each row: counter (n, 4) and key (n, 2) uint32, C-contiguous.");
}

}  // namespace dropkit::py_bind
