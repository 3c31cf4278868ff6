// Compute device selection through ggml's backend registry, thread count,
// and the per-graph scheduler. One Backend is shared by every model and
// session that runs on the same device.
#pragma once

#include <memory>
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

class Backend {
public:
    // device: "auto" (first GPU, else CPU), "cpu", "cuda", "cuda:N", "metal",
    // "gpu", "gpu:N", or a ggml device name ("CUDA0"). n_threads <= 0: all cores.
    // repack_weights: on CPU, store quantized matmul weights in ggml's
    // repacked (interleaved) layouts: faster prefill, slower single-token
    // decode on AVX2 machines; a plain layout gets huge pages instead.
    Backend(const std::string & device, int n_threads, bool repack_weights = true);
    ~Backend();
    Backend(const Backend &) = delete;
    Backend & operator=(const Backend &) = delete;

    ggml_backend_t main() const { return main_; }  // where graphs run
    ggml_backend_t cpu() const { return cpu_; }    // always present (fallback ops, host tables)
    bool main_is_cpu() const { return main_ == cpu_; }
    ggml_backend_dev_t device() const { return dev_; }
    const std::string & device_name() const { return device_name_; }
    int n_threads() const { return n_threads_; }
    bool repack_weights() const { return repack_weights_; }

    // Buffer type for weights on the main device, and the CPU's extra
    // (repacked) buffer types that accelerate matmuls on quantized weights.
    ggml_backend_buffer_type_t weight_buffer_type() const;
    const std::vector<ggml_backend_buffer_type_t> & cpu_extra_buffer_types() const { return cpu_extra_bufts_; }

    // A new scheduler over (main, cpu) sized for graphs of up to max_nodes.
    ggml_backend_sched_t new_scheduler(size_t max_nodes) const;

private:
    ggml_backend_t main_ = nullptr;
    ggml_backend_t cpu_ = nullptr;
    ggml_backend_dev_t dev_ = nullptr;
    std::string device_name_;
    int n_threads_ = 1;
    bool repack_weights_ = true;
    std::vector<ggml_backend_buffer_type_t> cpu_extra_bufts_;
};

int default_thread_count();

}  // namespace mimo
