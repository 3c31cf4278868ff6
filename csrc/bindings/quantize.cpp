// ggml's quantizers for Python (`mimo-ggml quantize`, converters, benches):
// rows of float32 in, ggml block bytes out, and back.
#include "bindings/common.h"
#include "core/errors.h"
#include "ggml.h"

namespace mimo::bindings {
namespace {

ggml_type type_by_name(const std::string & name) {
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const char * tn = ggml_type_name(ggml_type(t));
        if (tn && name == tn && ggml_get_type_traits(ggml_type(t))->blck_size > 0) return ggml_type(t);
    }
    fail(ErrorKind::InvalidArgument, strfmt("unknown ggml type '%s' (e.g. q4_0, q8_0, q4_K, q5_K, q6_K, f16)", name.c_str()));
}

}  // namespace

void bind_quantize(py::module_ & m) {
    m.def(
        "quantize",
        [](py::array_t<float, py::array::c_style | py::array::forcecast> rows, const std::string & type_name) {
            const ggml_type type = type_by_name(type_name);
            if (rows.ndim() != 2) fail(ErrorKind::InvalidArgument, "quantize expects a 2-D float32 array (rows, width)");
            const int64_t n_rows = rows.shape(0), width = rows.shape(1);
            if (width % ggml_blck_size(type) != 0) {
                fail(ErrorKind::InvalidArgument, strfmt("row width %lld is not a multiple of the %s block size %lld",
                                                        (long long) width, type_name.c_str(),
                                                        (long long) ggml_blck_size(type)));
            }
            if (ggml_quantize_requires_imatrix(type)) {
                fail(ErrorKind::InvalidArgument, strfmt("%s needs an importance matrix, which is not supported", type_name.c_str()));
            }
            const size_t row_bytes = ggml_row_size(type, width);
            py::array_t<uint8_t> out({n_rows, int64_t(row_bytes)});
            const float * src = rows.data();
            uint8_t * dst = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                ggml_quantize_chunk(type, src, dst, 0, n_rows, width, nullptr);
            }
            return out;
        },
        py::arg("rows"), py::arg("type"), "Quantize float32 rows with ggml; returns (rows, row_bytes) uint8");
    m.def(
        "dequantize",
        [](py::array_t<uint8_t, py::array::c_style> data, const std::string & type_name, int64_t width) {
            const ggml_type type = type_by_name(type_name);
            const size_t row_bytes = ggml_row_size(type, width);
            if (data.size() % int64_t(row_bytes) != 0) {
                fail(ErrorKind::InvalidArgument, "data size is not a whole number of rows of that type and width");
            }
            const int64_t n_rows = int64_t(data.size() / row_bytes);
            py::array_t<float> out({n_rows, width});
            auto to_float = ggml_get_type_traits(type)->to_float;
            if (!to_float) fail(ErrorKind::InvalidArgument, strfmt("type %s cannot be dequantized", type_name.c_str()));
            to_float(data.data(), out.mutable_data(), n_rows * width);
            return out;
        },
        py::arg("data"), py::arg("type"), py::arg("width"));
    m.def("type_info", [](const std::string & type_name) {
        const ggml_type type = type_by_name(type_name);
        return py::make_tuple(int(type), int64_t(ggml_blck_size(type)), int64_t(ggml_type_size(type)));
    }, py::arg("type"), "(ggml type id, block size, bytes per block)");
}

}  // namespace mimo::bindings
