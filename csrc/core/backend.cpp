#include "core/backend.h"

#include <algorithm>
#include <cctype>
#include <thread>

#include "core/errors.h"
#include "core/log.h"

namespace mimo {
namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

const char * kind_name(enum ggml_backend_dev_type t) {
    switch (t) {
        case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
        default: return "accel";
    }
}

std::string available_devices_text() {
    std::string s;
    for (const auto & d : list_devices()) {
        if (!s.empty()) s += ", ";
        s += d.name + " (" + d.kind + ")";
    }
    return s.empty() ? "none" : s;
}

bool is_gpu(ggml_backend_dev_t d) {
    const auto t = ggml_backend_dev_type(d);
    return t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU;
}

// The index-th GPU device whose backend registry name matches reg_prefix
// (case-insensitive; empty prefix: any GPU).
ggml_backend_dev_t nth_gpu(const std::string & reg_prefix, int index) {
    int seen = 0;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (!is_gpu(d)) continue;
        const std::string reg = lower(ggml_backend_reg_name(ggml_backend_dev_backend_reg(d)));
        if (!reg_prefix.empty() && reg.rfind(reg_prefix, 0) != 0) continue;
        if (seen++ == index) return d;
    }
    return nullptr;
}

ggml_backend_dev_t resolve_device(const std::string & spec_in) {
    const std::string spec = lower(spec_in);
    if (spec.empty() || spec == "auto") {
        ggml_backend_dev_t gpu = nth_gpu("", 0);
        return gpu ? gpu : ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    }
    if (spec == "cpu") return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    std::string family = spec;
    int index = 0;
    const size_t colon = spec.find(':');
    if (colon != std::string::npos) {
        family = spec.substr(0, colon);
        const std::string idx = spec.substr(colon + 1);
        if (idx.empty() || idx.size() > 6 || !std::all_of(idx.begin(), idx.end(), ::isdigit)) {
            fail(ErrorKind::InvalidArgument,
                 strfmt("device '%s': the part after ':' must be a device index such as 'cuda:0' (available: %s)",
                        spec_in.c_str(), available_devices_text().c_str()));
        }
        index = std::atoi(idx.c_str());
    }
    ggml_backend_dev_t d = nullptr;
    if (family == "gpu") {
        d = nth_gpu("", index);
    } else if (family == "cuda" || family == "metal" || family == "vulkan" || family == "hip" || family == "sycl") {
        d = nth_gpu(family == "metal" ? "mtl" : family, index);
        if (!d && family == "metal") d = nth_gpu("metal", index);
    } else {
        d = ggml_backend_dev_by_name(spec_in.c_str());  // a ggml device name such as "CUDA0"
    }
    if (!d) {
        fail(ErrorKind::Backend,
             strfmt("device '%s' is not available in this build; available: %s. Use device='cpu', or install a "
                    "ggml built with that backend (see the README)",
                    spec_in.c_str(), available_devices_text().c_str()));
    }
    return d;
}

}  // namespace

int default_thread_count() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 4 : int(n);
}

std::vector<DeviceInfo> list_devices() {
    std::vector<DeviceInfo> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        DeviceInfo info;
        info.name = ggml_backend_dev_name(d);
        info.description = ggml_backend_dev_description(d);
        info.kind = kind_name(ggml_backend_dev_type(d));
        ggml_backend_dev_memory(d, &info.memory_free, &info.memory_total);
        out.push_back(info);
    }
    return out;
}

int max_thread_count() { return std::max(8, 4 * default_thread_count()); }

Backend::Backend(const std::string & device, std::optional<int64_t> n_threads, bool repack_weights)
    : repack_weights_(repack_weights) {
    if (n_threads && (*n_threads < 1 || *n_threads > max_thread_count())) {
        fail(ErrorKind::InvalidArgument,
             strfmt("n_threads must be between 1 and %d on this machine (%d cores), or None for all cores; got %lld",
                    max_thread_count(), default_thread_count(), (long long) *n_threads));
    }
    n_threads_ = n_threads ? int(*n_threads) : default_thread_count();
    dev_ = resolve_device(device);
    cpu_dev_ = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu_dev_) fail(ErrorKind::Backend, "this ggml build has no CPU backend");
    device_name_ = ggml_backend_dev_name(dev_);

    // CPU extra buffer types (repacked layouts for quantized matmuls)
    ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(cpu_dev_);
    auto get_extra = (ggml_backend_dev_get_extra_bufts_t) ggml_backend_reg_get_proc_address(
        cpu_reg, "ggml_backend_dev_get_extra_bufts");
    if (get_extra) {
        for (ggml_backend_buffer_type_t * p = get_extra(cpu_dev_); p && *p; ++p) cpu_extra_bufts_.push_back(*p);
    }
    MIMO_LOG_INFO("mimo-ggml: device %s, %d threads", device_name_.c_str(), n_threads_);
}

Backend::~Backend() = default;

ggml_backend_buffer_type_t Backend::weight_buffer_type() const { return ggml_backend_dev_buffer_type(dev_); }

Scheduler::Scheduler(const Backend & backend, size_t max_nodes) {
    cpu_ = ggml_backend_dev_init(backend.cpu_device(), nullptr);
    if (!cpu_) fail(ErrorKind::Backend, "could not initialise the ggml CPU backend");
    // the thread count through the registry: the same call works when the CPU backend is a loaded module
    ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(backend.cpu_device());
    auto set_threads = (ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(cpu_reg,
                                                                                       "ggml_backend_set_n_threads");
    if (set_threads) set_threads(cpu_, backend.n_threads());
    // No persistent ggml thread pool: its workers would not exist in a fork()ed child, where the
    // next graph would wait for them forever; ggml's per-graph threads measured within noise of it.
    if (backend.main_is_cpu()) {
        main_ = cpu_;
    } else {
        main_ = ggml_backend_dev_init(backend.device(), nullptr);
        if (!main_) {
            ggml_backend_free(cpu_);
            fail(ErrorKind::Backend, strfmt("could not initialise device %s", backend.device_name().c_str()));
        }
    }
    std::vector<ggml_backend_t> backends{main_};
    if (main_ != cpu_) backends.push_back(cpu_);
    sched_ = ggml_backend_sched_new(backends.data(), nullptr, int(backends.size()), max_nodes, false, true);
    if (!sched_) {
        if (main_ != cpu_) ggml_backend_free(main_);
        ggml_backend_free(cpu_);
        fail(ErrorKind::Backend, "could not create a ggml scheduler");
    }
}

Scheduler::~Scheduler() {
    ggml_backend_sched_free(sched_);
    if (main_ != cpu_) ggml_backend_free(main_);
    ggml_backend_free(cpu_);
}

}  // namespace mimo
