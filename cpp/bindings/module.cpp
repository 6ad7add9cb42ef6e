// dropkit._core: the compiled kernels. Private; the public API is the Python package.
#include "bindings/common.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "dropkit's compiled core (private: use the dropkit package)";
    dropkit::py_bind::register_runtime(m);
    dropkit::py_bind::register_philox(m);
    dropkit::py_bind::register_dropout(m);
    dropkit::py_bind::register_variants(m);
    dropkit::py_bind::register_fast(m);
    dropkit::py_bind::register_dropblock(m);
}
