// The ggml RPC server behind `mimo-ggml rpc-server`: serves this machine's
// devices to mimo-ggml clients that pass device="rpc:HOST:PORT".
#include <string>
#include <vector>

#include "bindings/common.h"
#include "core/backend.h"
#include "core/errors.h"
#include "ggml-backend.h"

namespace mimo::bindings {
namespace {

// Blocks until the process ends (ggml's server loop has no stop call).
void rpc_start_server(const std::string & host, int port, const std::string & cache_dir, int n_threads,
                      const std::vector<std::string> & devices) {
    ensure_backends_loaded();
    if (port < 1 || port > 65535) fail(ErrorKind::InvalidArgument, strfmt("port must be 1..65535, got %d", port));
    if (n_threads < 1 || n_threads > max_thread_count()) {
        fail(ErrorKind::InvalidArgument, strfmt("threads must be 1..%d, got %d", max_thread_count(), n_threads));
    }
    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    if (!rpc) {
        fail(ErrorKind::Backend, "this ggml build has no RPC backend (the mimo-ggml wheels have it; build from "
                                 "source with MIMO_GGML_BUNDLE_GGML=1)");
    }
    using start_t = void (*)(const char *, const char *, size_t, size_t, ggml_backend_dev_t *);
    auto start = (start_t) ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_start_server");
    if (!start) fail(ErrorKind::Backend, "this ggml's RPC backend lacks ggml_backend_rpc_start_server");
    std::vector<ggml_backend_dev_t> devs;
    for (const auto & spec : devices) {
        Backend b(spec, n_threads, false);  // resolves the name, with the usual errors
        if (spec.rfind("rpc:", 0) == 0) fail(ErrorKind::InvalidArgument, "an RPC server cannot serve an RPC device");
        devs.push_back(b.device());
    }
    if (devs.empty()) fail(ErrorKind::InvalidArgument, "no devices to serve");
    const std::string endpoint = host + ":" + std::to_string(port);
    {
        py::gil_scoped_release release;
        start(endpoint.c_str(), cache_dir.empty() ? nullptr : cache_dir.c_str(), size_t(n_threads), devs.size(),
              devs.data());
    }
    // only returns when the server could not start (the reason is on stderr)
    fail(ErrorKind::Backend, strfmt("the RPC server on %s could not start (port in use, or bad address?)",
                                    endpoint.c_str()));
}

}  // namespace

void bind_rpc(py::module_ & m) {
    m.def("rpc_start_server", &rpc_start_server, py::arg("host"), py::arg("port"), py::arg("cache_dir") = "",
          py::arg("n_threads") = 1, py::arg("devices") = std::vector<std::string>{"cpu"},
          "Serve this machine's devices over ggml RPC (no authentication); blocks until the process ends");
}

}  // namespace mimo::bindings
