// Read-only GGUF metadata for the Python side (architecture, string arrays
// such as the tokenizer vocabulary), through the same validating GgufFile
// the models use, so bad files raise the same typed errors.
#include "bindings/common.h"
#include "core/gguf_file.h"

namespace mimo::bindings {

void bind_gguf_metadata(py::module_ & m) {
    m.def("gguf_architecture", [](const std::string & path) { return GgufFile(path).architecture(); },
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
                    if (f.has_key(k)) found.emplace_back(k, f.str_array(k));
                }
            }
            for (auto & kv : found) out[py::str(kv.first)] = kv.second;
            return out;
        },
        py::arg("path"), py::arg("keys"), "string-array metadata values by key (absent keys are left out)");
}

}  // namespace mimo::bindings
