// system_info(), device listing and the log bridge to Python's logging.
#include <Python.h>

#include "bindings/common.h"
#include "core/backend.h"
#include "core/log.h"
#include "ggml-backend.h"
#include "ggml.h"

namespace mimo::bindings {
namespace {

int python_level(int ggml_level) {
    switch (ggml_level) {
        case GGML_LOG_LEVEL_DEBUG: return 10;
        case GGML_LOG_LEVEL_WARN: return 30;
        case GGML_LOG_LEVEL_ERROR: return 40;
        default: return 20;
    }
}

// Forward native log lines to logging.getLogger("mimo_ggml"). The logger
// has only a NullHandler unless the application configures logging, so the
// default is silent.
void enable_log_forwarding(bool on) {
    if (!on) {
        set_log_sink(nullptr);
        return;
    }
    set_log_sink([](int level, const std::string & line) {
        if (!Py_IsInitialized()) return;
        py::gil_scoped_acquire gil;
        try {
            py::object logger = py::module_::import("logging").attr("getLogger")("mimo_ggml");
            logger.attr("log")(python_level(level), "%s", line);
        } catch (py::error_already_set & e) {
            if (e.matches(PyExc_KeyboardInterrupt)) {
                // Ctrl-C landed while Python ran the logging call: re-arm it, so the
                // interrupt reaches the caller as soon as the native call returns
                // (discarding it here swallowed the user's Ctrl-C)
                PyErr_SetInterrupt();
                return;
            }
            e.discard_as_unraisable("mimo_ggml log forwarding");
        }
    });
}

py::dict system_info() {
    const BackendLoadInfo & loaded = ensure_backends_loaded();
    py::dict info;
#if defined(MIMO_GGML_VERSION)
    info["version"] = MIMO_GGML_VERSION;
#endif
    info["ggml_version"] = ggml_version();
    info["ggml_commit"] = ggml_commit();
    py::list devices;
    for (const auto & d : list_devices()) {
        py::dict dd;
        dd["name"] = d.name;
        dd["description"] = d.description;
        dd["type"] = d.kind;
        dd["memory_total"] = d.memory_total;
        dd["memory_free"] = d.memory_free;
        devices.append(dd);
    }
    info["devices"] = devices;
    py::dict features;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        auto get = (ggml_backend_get_features_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
        if (!get) continue;
        py::dict f;
        for (ggml_backend_feature * p = get(reg); p && p->name; ++p) f[p->name] = p->value;
        features[ggml_backend_reg_name(reg)] = f;
    }
    info["features"] = features;
    info["default_threads"] = default_thread_count();
    // which ggml this is and how its backends were found
    py::list backends;
    for (const auto & b : loaded.backends) backends.append(b);
    info["backends"] = backends;
    info["cpu_variant"] = loaded.cpu_variant.empty() ? py::object(py::none()) : py::object(py::str(loaded.cpu_variant));
    info["cpu_module"] = loaded.cpu_module.empty() ? py::object(py::none()) : py::object(py::str(loaded.cpu_module));
    py::dict build;
    build["backend_dl"] = loaded.dynamic;           // GGML_BACKEND_DL: backends are loadable modules
    build["backend_dir"] = loaded.dynamic ? py::object(py::str(loaded.dir)) : py::object(py::none());
#if defined(MIMO_GGML_DL)
    build["bundled_ggml"] = true;
#else
    build["bundled_ggml"] = false;
#endif
    build["rpc"] = !rpc_protocol_version().empty() && ggml_backend_reg_by_name("RPC") != nullptr;
    build["rpc_protocol"] = rpc_protocol_version().empty() ? py::object(py::none()) : py::object(py::str(rpc_protocol_version()));
    info["build"] = build;
    return info;
}

}  // namespace

void bind_system(py::module_ & m) {
    enable_log_forwarding(true);
    m.def("_set_log_forwarding", &enable_log_forwarding, py::arg("on"));
    m.def("system_info", &system_info, "ggml version, compute devices and CPU features of this build");
}

}  // namespace mimo::bindings
