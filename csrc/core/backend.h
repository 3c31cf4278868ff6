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

// How a model's layers are spread over several devices: layer `il` of a
// stack of `n_layer` goes to the device whose share of the cumulative split
// covers it (shares proportional to `split`, equal when empty).
std::vector<size_t> layer_devices(const std::vector<double> & split, size_t n_devices, int n_layer);

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
    // Several devices: each stack of layers ("blk.N", "audio.blk.N", ...) is
    // split over them in order, in proportion to `split` (one non-negative
    // share per device; empty: equal shares). Tensors outside the layers
    // live on the first device.
    Backend(const std::vector<std::string> & devices, std::optional<int64_t> n_threads, bool repack_weights,
            const std::vector<double> & split);
    ~Backend();
    Backend(const Backend &) = delete;
    Backend & operator=(const Backend &) = delete;

    ggml_backend_dev_t device() const { return dev_; }      // the first device: tensors outside the layers
    ggml_backend_dev_t cpu_device() const { return cpu_dev_; }  // fallback ops, host tables
    const std::string & device_name() const { return device_name_; }
    int n_threads() const { return n_threads_; }
    bool repack_weights() const { return repack_weights_; }

    // every device of the split, the first one first (one entry without a split)
    const std::vector<ggml_backend_dev_t> & devices() const { return devices_; }
    // the device of layer il in a stack of n_layer layers
    ggml_backend_dev_t layer_device(int il, int n_layer) const;

    // Buffer type for weights on the main device, and the CPU's extra
    // (repacked) buffer types that accelerate matmuls on quantized weights.
    ggml_backend_buffer_type_t weight_buffer_type() const;
    const std::vector<ggml_backend_buffer_type_t> & cpu_extra_buffer_types() const { return cpu_extra_bufts_; }

private:
    void init(const std::vector<std::string> & devices, std::optional<int64_t> n_threads);

    ggml_backend_dev_t dev_ = nullptr;
    ggml_backend_dev_t cpu_dev_ = nullptr;
    std::vector<ggml_backend_dev_t> devices_;
    std::vector<double> split_;
    std::string device_name_;
    int n_threads_ = 1;
    bool repack_weights_ = true;
    std::vector<ggml_backend_buffer_type_t> cpu_extra_bufts_;
};

// The Backend for a model: one `device`, or a list `devices` whose layers are
// split by `split`; passing both, or a split without a list, is InvalidArgument.
std::shared_ptr<Backend> make_backend(const std::string & device, const std::vector<std::string> & devices,
                                      const std::vector<double> & split, std::optional<int64_t> n_threads,
                                      bool repack_weights = true);

int default_thread_count();
// The largest n_threads accepted: a few times the cores (more only thrashes).
int max_thread_count();

// A ggml scheduler over fresh backend instances of a Backend's devices (each
// device of the split, plus the CPU for ops and host tensors they lack). ggml backends keep
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
    // instances of the Backend's devices other than the CPU, then the CPU's (ggml's scheduler wants it last)
    std::vector<ggml_backend_t> instances_;
    ggml_backend_sched_t sched_ = nullptr;
};

}  // namespace mimo
