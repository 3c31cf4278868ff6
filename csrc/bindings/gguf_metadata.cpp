// Read-only GGUF metadata for the Python side (architecture, string arrays
// such as the tokenizer vocabulary, a summary for `mimo-ggml info`), through
// the same validating GgufFile the models use, so bad files raise the same
// typed errors and strings that are not UTF-8 raise ModelLoadError naming
// the key instead of a bare UnicodeDecodeError.
#include <cstring>

#include "bindings/common.h"
#include "core/errors.h"
#include "core/gguf_file.h"

namespace mimo::bindings {
namespace {

template <class T>
T load(const uint8_t * p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

py::object element(const GgufValue & v, size_t i) {
    const uint8_t * p = v.raw.data();
    switch (v.type) {
        case GGUF_TYPE_UINT8: return py::int_(load<uint8_t>(p + i));
        case GGUF_TYPE_INT8: return py::int_(load<int8_t>(p + i));
        case GGUF_TYPE_UINT16: return py::int_(load<uint16_t>(p + 2 * i));
        case GGUF_TYPE_INT16: return py::int_(load<int16_t>(p + 2 * i));
        case GGUF_TYPE_UINT32: return py::int_(load<uint32_t>(p + 4 * i));
        case GGUF_TYPE_INT32: return py::int_(load<int32_t>(p + 4 * i));
        case GGUF_TYPE_UINT64: return py::int_(load<uint64_t>(p + 8 * i));
        case GGUF_TYPE_INT64: return py::int_(load<int64_t>(p + 8 * i));
        case GGUF_TYPE_FLOAT32: return py::float_(load<float>(p + 4 * i));
        case GGUF_TYPE_FLOAT64: return py::float_(load<double>(p + 8 * i));
        case GGUF_TYPE_BOOL: return py::bool_(p[i] != 0);
        case GGUF_TYPE_STRING: return py::str(utf8_repaired(v.strs[i]));  // shown, never trusted
        default: return py::none();
    }
}

}  // namespace

void bind_gguf_metadata(py::module_ & m) {
    m.def(
        "gguf_architecture",
        [](const std::string & path) {
            py::gil_scoped_release nogil;
            return GgufFile(path).architecture();
        },
        py::arg("path"), "general.architecture of a GGUF file ('' if absent)");
    m.def(
        "gguf_strings",
        [](const std::string & path, const std::vector<std::string> & keys) {
            py::dict out;
            std::vector<std::pair<std::string, std::vector<std::string>>> found;
            {
                py::gil_scoped_release nogil;
                GgufFile f(path);
                for (const auto & k : keys) {
                    if (f.has_key(k)) found.emplace_back(k, f.str_array(k));  // UTF-8 checked
                }
            }
            for (auto & kv : found) out[py::str(kv.first)] = kv.second;
            return out;
        },
        py::arg("path"), py::arg("keys"),
        "string-array metadata values by key (absent keys are left out); ModelLoadError for another type or "
        "strings that are not UTF-8");
    m.def(
        "gguf_info",
        [](const std::string & path, size_t max_array) {
            std::unique_ptr<GgufFile> f;
            {
                py::gil_scoped_release nogil;
                f = std::make_unique<GgufFile>(path);
            }
            py::dict metadata;
            for (const std::string & key : f->keys()) {
                const GgufValue & v = *f->value(key);
                py::object value;
                if (!v.is_array) {
                    value = element(v, 0);
                } else if (v.n > max_array) {
                    value = py::str(f->type_description(key));
                } else {
                    py::list items;
                    for (size_t i = 0; i < size_t(v.n); ++i) items.append(element(v, i));
                    value = items;
                }
                metadata[py::str(utf8_repaired(key))] = value;
            }
            py::dict types;
            for (const TensorInfo & t : f->tensors()) {
                py::str name(ggml_type_name(t.type));
                types[name] = (types.contains(name) ? types[name].cast<int64_t>() : 0) + 1;
            }
            py::dict out;
            out["version"] = f->version();
            out["alignment"] = f->alignment();
            out["file_size"] = f->file_size();
            out["metadata"] = metadata;
            out["tensors"] = f->tensors().size();
            out["tensor_types"] = types;
            return out;
        },
        py::arg("path"), py::arg("max_array") = 16,
        "a validated summary of a GGUF file: version, metadata (arrays longer than max_array summarised, strings "
        "with bad bytes escaped), tensor count and types; typed errors for a bad file");
}

}  // namespace mimo::bindings
