// Compute device selection through ggml's backend registry and thread
// count (Backend: shared by a model and all its sessions), and the per-graph
// scheduler (Scheduler: one per session, on backend instances of its own).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ggml-backend.h"

namespace mimo {

struct DeviceInfo {
    std::string name;         // ggml device name, e.g. "CPU", "CUDA0"
    std::string description;  // human readable
    std::string kind;         // "cpu", "gpu", "igpu", "accel"
    size_t memory_free = 0;
    size_t memory_total = 0;
};

std::vector<DeviceInfo> list_devices();

// How ggml's backends were found. In a dispatching build (MIMO_GGML_DL: the
// wheels) nothing is linked in: the first call loads the backend modules
// from the folder beside the extension (or $MIMO_GGML_BACKEND_DIR), and ggml
// picks the best CPU variant for this machine. Idempotent and thread-safe;
// every entry point that needs a device calls it.
struct BackendLoadInfo {
    bool dynamic = false;                 // backends are loaded modules (GGML_BACKEND_DL)
    std::string dir;                      // where they were loaded from (dynamic only)
    std::string cpu_module;               // file name of the CPU module in use, e.g. libggml-cpu-zen4.so
    std::string cpu_variant;              // its variant name ("zen4"), "" where linked in
    std::vector<std::string> backends;    // registry names: "CPU", "RPC", "CUDA", ...
};
const BackendLoadInfo & ensure_backends_loaded();

// A function the CPU backend exports (ggml-cpu.h), looked up in the loaded CPU
// module in a dispatching build (where nothing of ggml-cpu is linked in);
// nullptr where it is missing. Source builds call ggml-cpu.h directly.
void * cpu_backend_symbol(const char * name);

// ggml's RPC protocol version this build speaks ("5.0.0"), "" without RPC.
std::string rpc_protocol_version();

// ggml_backend_buffer_free that never throws: freeing a buffer on an RPC
// server that has gone away fails (and is only logged; the host-side handle leaks).
void free_buffer_noexcept(ggml_backend_buffer_t buffer) noexcept;

class Backend {
public:
    // device: "auto" (first GPU, else CPU), "cpu", "cuda", "cuda:N", "metal",
    // "gpu", "gpu:N", "rpc:HOST:PORT" (a `mimo-ggml rpc-server`), or a ggml
    // device name ("CUDA0"). n_threads: none for
    // all cores, else 1..max_thread_count() (InvalidArgument outside).
    // repack_weights: on CPU, store quantized matmul weights in ggml's
    // repacked (interleaved) layouts: faster prefill, slower single-token
    // decode on AVX2 machines; a plain layout gets huge pages instead.
    Backend(const std::string & device, std::optional<int64_t> n_threads, bool repack_weights = true);
    ~Backend();
    Backend(const Backend &) = delete;
    Backend & operator=(const Backend &) = delete;

    bool main_is_cpu() const { return dev_ == cpu_dev_; }
    ggml_backend_dev_t device() const { return dev_; }      // where graphs run
    ggml_backend_dev_t cpu_device() const { return cpu_dev_; }  // fallback ops, host tables
    const std::string & device_name() const { return device_name_; }
    int n_threads() const { return n_threads_; }
    bool repack_weights() const { return repack_weights_; }

    // Buffer type for weights on the main device, and the CPU's extra
    // (repacked) buffer types that accelerate matmuls on quantized weights.
    ggml_backend_buffer_type_t weight_buffer_type() const;
    const std::vector<ggml_backend_buffer_type_t> & cpu_extra_buffer_types() const { return cpu_extra_bufts_; }

private:
    ggml_backend_dev_t dev_ = nullptr;
    ggml_backend_dev_t cpu_dev_ = nullptr;
    std::string device_name_;
    int n_threads_ = 1;
    bool repack_weights_ = true;
    std::vector<ggml_backend_buffer_type_t> cpu_extra_bufts_;
};

int default_thread_count();
// The largest n_threads accepted: a few times the cores (more only thrashes).
int max_thread_count();

// A ggml scheduler over fresh backend instances of a Backend's devices (main,
// plus the CPU for ops and host tensors the device lacks). ggml backends keep
// per-instance compute state (the CPU backend's work buffer, a GPU stream),
// so each session computes on instances of its own while sharing the
// weights, which live in buffers of the devices, not of the instances.
class Scheduler {
public:
    Scheduler(const Backend & backend, size_t max_nodes);
    ~Scheduler();
    Scheduler(const Scheduler &) = delete;
    Scheduler & operator=(const Scheduler &) = delete;
    ggml_backend_sched_t get() const { return sched_; }

private:
    ggml_backend_t main_ = nullptr, cpu_ = nullptr;
    ggml_backend_sched_t sched_ = nullptr;
};

}  // namespace mimo
