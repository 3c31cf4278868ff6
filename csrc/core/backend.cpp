#include "core/backend.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#endif

#include "core/errors.h"
#include "core/log.h"
#if defined(MIMO_GGML_RPC)
#include "ggml-rpc.h"
#endif

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


// ---- backend loading -------------------------------------------------------

#if defined(MIMO_GGML_DL)
std::string dirname_of(const std::string & path) {
    const size_t slash = path.find_last_of("/\\");
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}
#endif

std::string basename_of(const std::string & path) {
    const size_t slash = path.find_last_of("/\\");
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The file a function's code lives in: the extension itself, or a backend module.
std::string file_of_address(const void * addr) {
#if defined(_WIN32)
    HMODULE mod = nullptr;
    if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            (LPCSTR) addr, &mod)) {
        return "";
    }
    char buf[4096];
    const DWORD n = GetModuleFileNameA(mod, buf, sizeof(buf));
    return n ? std::string(buf, n) : std::string();
#else
    Dl_info info{};
    if (addr && dladdr(addr, &info) && info.dli_fname) return info.dli_fname;
    return "";
#endif
}

// ggml aborts the process when an RPC server goes away in the middle of a
// call ("Remote RPC server crashed ..."). Those aborts become a BackendError
// instead: the caller (always the thread that called into ggml) unwinds,
// the client survives and its session can be closed. Any other abort keeps
// ggml's behaviour (message, then abort()).
void abort_to_exception(const char * message) {
    if (message && std::strstr(message, "RPC server")) {
        throw Error(ErrorKind::Backend,
                    strfmt("the RPC server stopped answering (%s); close this session and model, then reconnect",
                           message));
    }
    std::fprintf(stderr, "%s\n", message ? message : "ggml abort");
}

// GPU backends (any registry entry but CPU and RPC) whose module loaded but found no device
std::vector<std::string> gpu_backends_without_devices() {
    std::vector<std::string> out;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        const std::string name = ggml_backend_reg_name(reg);
        if (name != "CPU" && name != "RPC" && ggml_backend_reg_dev_count(reg) == 0) out.push_back(name);
    }
    return out;
}

BackendLoadInfo load_backends() {
    BackendLoadInfo info;
    ggml_set_abort_callback(abort_to_exception);
#if defined(MIMO_GGML_DL)
    info.dynamic = true;
    const char * env = std::getenv("MIMO_GGML_BACKEND_DIR");
    if (env && *env) {
        info.dir = env;
    } else {
        info.dir = dirname_of(file_of_address((const void *) &load_backends)) + "/ggml";
    }
    ggml_backend_load_all_from_path(info.dir.c_str());
#endif
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        info.backends.push_back(ggml_backend_reg_name(reg));
        if (std::string(ggml_backend_reg_name(reg)) == "CPU" && info.dynamic) {
            void * fn = ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
            info.cpu_module = basename_of(file_of_address(fn));
            // libggml-cpu-<variant>.so / ggml-cpu-<variant>.dll
            std::string v = info.cpu_module;
            const size_t at = v.find("ggml-cpu-");
            if (at != std::string::npos) {
                v = v.substr(at + 9);
                v = v.substr(0, v.find('.'));
                info.cpu_variant = v;
            }
        }
    }
#if defined(MIMO_GGML_DL)
    bool has_cpu = false, has_gpu = false;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        const auto t = ggml_backend_dev_type(ggml_backend_dev_get(i));
        has_cpu |= t == GGML_BACKEND_DEVICE_TYPE_CPU;
        has_gpu |= t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU;
    }
    // a GPU module that loaded but found no device (no driver, no GPU) is named: its presence
    // tells the user the install is right and the machine is not
    std::string idle_modules;
    for (const std::string & name : gpu_backends_without_devices()) {
        idle_modules += (idle_modules.empty() ? "" : ", ") + name;
    }
    const char * variant = info.cpu_variant.empty() ? "?" : info.cpu_variant.c_str();
    if (!has_cpu) {
        MIMO_LOG_WARN("mimo-ggml: no usable ggml CPU backend module in %s (is the installation complete?)",
                      info.dir.c_str());
    } else if (has_gpu) {
        MIMO_LOG_INFO("mimo-ggml: ggml backends from %s: CPU variant %s", info.dir.c_str(), variant);
    } else if (!idle_modules.empty()) {
        MIMO_LOG_INFO("mimo-ggml: ggml backends from %s: CPU variant %s; the %s module loaded but found no "
                      "device (no GPU, or no driver for it), running on CPU",
                      info.dir.c_str(), variant, idle_modules.c_str());
    } else {
        MIMO_LOG_INFO("mimo-ggml: ggml backends from %s: CPU variant %s; no GPU backend module found there, "
                      "running on CPU", info.dir.c_str(), variant);
    }
#endif
    return info;
}

// ---- RPC devices -------------------------------------------------------------

#if defined(MIMO_GGML_RPC) && !defined(_WIN32)
// Our own HELLO exchange before ggml's: ggml's client waits without a time
// limit and reports a version mismatch only as "no devices". This one gives
// up after a few seconds and names both versions.
void probe_rpc_server(const std::string & host, const std::string & port, const std::string & endpoint) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo * res = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) {
        fail(ErrorKind::Backend, strfmt("RPC server %s: cannot resolve host '%s'", endpoint.c_str(), host.c_str()));
    }
    int fd = -1;
    for (addrinfo * a = res; a && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        timeval tv{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            ::close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fail(ErrorKind::Backend, strfmt("cannot connect to the RPC server at %s (%s); start one with "
                                        "`mimo-ggml rpc-server --host HOST --port PORT`",
                                        endpoint.c_str(), std::strerror(errno)));
    }
    const std::string ours = rpc_protocol_version();
    auto io_all = [&](bool send, void * p, size_t n) {
        char * c = (char *) p;
        while (n > 0) {
            const ssize_t k = send ? ::send(fd, c, n, MSG_NOSIGNAL) : ::recv(fd, c, n, 0);
            if (k <= 0) return false;
            c += k;
            n -= size_t(k);
        }
        return true;
    };
    // request: | cmd HELLO (14) | size (8 bytes) | connection capabilities (24 zero bytes: plain TCP) |
    uint8_t req[1 + 8 + 24] = {};
    req[0] = 14;
    const uint64_t req_size = 24;
    std::memcpy(req + 1, &req_size, 8);
    uint64_t rsp_size = 0;
    uint8_t rsp[28] = {};
    const bool sent = io_all(true, req, sizeof(req));
    const bool got_size = sent && io_all(false, &rsp_size, 8);
    const bool got = got_size && rsp_size == sizeof(rsp) && io_all(false, rsp, sizeof(rsp));
    ::close(fd);
    if (!got_size) {
        fail(ErrorKind::Backend,
             strfmt("the RPC server at %s did not complete the handshake within 10 s: it speaks another RPC "
                    "protocol version than this client (%s), is busy with another client, or is not a ggml RPC "
                    "server. Run the same mimo-ggml version on both ends",
                    endpoint.c_str(), ours.c_str()));
    }
    if (!got) {
        fail(ErrorKind::Backend,
             strfmt("the RPC server at %s speaks another RPC protocol version (its handshake reply has %llu bytes, "
                    "this client's protocol %s expects 28); run the same mimo-ggml version on both ends",
                    endpoint.c_str(), (unsigned long long) rsp_size, ours.c_str()));
    }
    if (rsp[0] != RPC_PROTO_MAJOR_VERSION || rsp[1] > RPC_PROTO_MINOR_VERSION) {
        fail(ErrorKind::Backend,
             strfmt("the RPC server at %s speaks RPC protocol %d.%d.%d, this client %s; run the same mimo-ggml "
                    "version on both ends",
                    endpoint.c_str(), rsp[0], rsp[1], rsp[2], ours.c_str()));
    }
}
#endif

ggml_backend_dev_t resolve_rpc_device(const std::string & spec_in) {
    const std::string endpoint = spec_in.substr(4);  // after "rpc:"
    const size_t colon = endpoint.rfind(':');
    const std::string host = colon == std::string::npos ? "" : endpoint.substr(0, colon);
    const std::string port = colon == std::string::npos ? "" : endpoint.substr(colon + 1);
    if (host.empty() || port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
        std::atoi(port.c_str()) < 1 || std::atoi(port.c_str()) > 65535) {
        fail(ErrorKind::InvalidArgument,
             strfmt("device '%s': expected rpc:HOST:PORT, e.g. rpc:127.0.0.1:50052", spec_in.c_str()));
    }
    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    if (!rpc) {
        fail(ErrorKind::Backend,
             strfmt("device '%s': this ggml build has no RPC backend (the mimo-ggml wheels have it; a source "
                    "build against the PyPI libggml-python does not: build with -C cmake.define.MIMO_GGML_BUNDLE_GGML=ON)",
                    spec_in.c_str()));
    }
    static std::mutex mutex;
    static std::set<std::string> probed;
    std::lock_guard<std::mutex> lock(mutex);
#if defined(MIMO_GGML_RPC) && !defined(_WIN32)
    if (!probed.count(endpoint)) {
        probe_rpc_server(host, port, endpoint);
        probed.insert(endpoint);
    }
#endif
    using add_server_t = ggml_backend_reg_t (*)(const char *);
    auto add_server = (add_server_t) ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server");
    if (!add_server) fail(ErrorKind::Backend, "this ggml's RPC backend lacks ggml_backend_rpc_add_server");
    ggml_backend_reg_t server = add_server(endpoint.c_str());
    if (!server || ggml_backend_reg_dev_count(server) == 0) {
        probed.erase(endpoint);
        fail(ErrorKind::Backend, strfmt("the RPC server at %s offers no devices (or refused the connection)",
                                        endpoint.c_str()));
    }
    return ggml_backend_reg_dev_get(server, 0);
}

ggml_backend_dev_t resolve_device(const std::string & spec_in) {
    const std::string spec = lower(spec_in);
    if (spec.rfind("rpc:", 0) == 0) return resolve_rpc_device(spec_in);
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
        // the backend's module is there but saw no device: the machine (GPU, driver) is what is missing
        std::string module_without_devices;
        for (const std::string & name : gpu_backends_without_devices()) {
            std::string lower = name;
            std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
            if (family == "gpu" || lower == family) module_without_devices = name;
        }
        if (!module_without_devices.empty()) {
            fail(ErrorKind::Backend,
                 strfmt("device '%s' is not available: the %s backend is installed but found no device (no GPU, "
                        "or no driver that supports it; ggml's log says why: `mimo-ggml -v info`); available: %s. "
                        "Use device='cpu' or 'auto'",
                        spec_in.c_str(), module_without_devices.c_str(), available_devices_text().c_str()));
        }
        fail(ErrorKind::Backend,
             strfmt("device '%s' is not available in this build; available: %s. Use device='cpu', or install a "
                    "ggml built with that backend (see the README)",
                    spec_in.c_str(), available_devices_text().c_str()));
    }
    return d;
}

}  // namespace

const BackendLoadInfo & ensure_backends_loaded() {
    static const BackendLoadInfo info = load_backends();  // C++11: initialised once, thread-safe
    return info;
}

void * cpu_backend_symbol(const char * name) {
    ensure_backends_loaded();
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu) return nullptr;
    // the module's file, from a function it hands out through the registry
    void * fn = ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(cpu), "ggml_backend_get_features");
    const std::string file = file_of_address(fn);
    if (file.empty()) return nullptr;
#if defined(_WIN32)
    HMODULE mod = GetModuleHandleA(file.c_str());
    return mod ? (void *) GetProcAddress(mod, name) : nullptr;
#else
    void * handle = dlopen(file.c_str(), RTLD_NOW | RTLD_NOLOAD);  // already loaded: only a reference
    if (!handle) return nullptr;
    void * sym = dlsym(handle, name);
    dlclose(handle);
    return sym;
#endif
}

std::string rpc_protocol_version() {
#if defined(MIMO_GGML_RPC)
    return strfmt("%d.%d.%d", RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION, RPC_PROTO_PATCH_VERSION);
#else
    return "";
#endif
}

void free_buffer_noexcept(ggml_backend_buffer_t buffer) noexcept {
    if (!buffer) return;
    try {
        ggml_backend_buffer_free(buffer);
    } catch (const std::exception & e) {
        MIMO_LOG_WARN("mimo-ggml: could not free a device buffer: %s", e.what());
    }
}

int default_thread_count() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 4 : int(n);
}

std::vector<DeviceInfo> list_devices() {
    ensure_backends_loaded();
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
    init({device}, n_threads);
}

Backend::Backend(const std::vector<std::string> & devices, std::optional<int64_t> n_threads, bool repack_weights,
                 const std::vector<double> & split)
    : split_(split), repack_weights_(repack_weights) {
    if (devices.empty()) fail(ErrorKind::InvalidArgument, "devices must name at least one device, e.g. ['cpu']");
    if (!split.empty() && split.size() != devices.size()) {
        fail(ErrorKind::InvalidArgument,
             strfmt("layer_split needs one share per device: %zu devices, %zu shares", devices.size(), split.size()));
    }
    double total = 0;
    for (double share : split) {
        if (!(share >= 0) || share > 1e12) {  // NaN and inf fail too
            fail(ErrorKind::InvalidArgument,
                 strfmt("layer_split shares must be non-negative finite numbers (at most 1e12), got %g", share));
        }
        total += share;
    }
    if (!split.empty() && total <= 0) fail(ErrorKind::InvalidArgument, "layer_split shares must not all be 0");
    init(devices, n_threads);
}

void Backend::init(const std::vector<std::string> & devices, std::optional<int64_t> n_threads) {
    if (n_threads && (*n_threads < 1 || *n_threads > max_thread_count())) {
        fail(ErrorKind::InvalidArgument,
             strfmt("n_threads must be between 1 and %d on this machine (%d cores), or None for all cores; got %lld",
                    max_thread_count(), default_thread_count(), (long long) *n_threads));
    }
    n_threads_ = n_threads ? int(*n_threads) : default_thread_count();
    ensure_backends_loaded();
    for (const std::string & spec : devices) {
        ggml_backend_dev_t d = resolve_device(spec);
        if (std::find(devices_.begin(), devices_.end(), d) != devices_.end()) {
            fail(ErrorKind::InvalidArgument,
                 strfmt("devices names %s twice ('%s'); list each device once", ggml_backend_dev_name(d),
                        spec.c_str()));
        }
        devices_.push_back(d);
    }
    dev_ = devices_.front();
    cpu_dev_ = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu_dev_) fail(ErrorKind::Backend, "this ggml build has no CPU backend");
    device_name_ = ggml_backend_dev_name(dev_);
    for (size_t i = 1; i < devices_.size(); ++i) device_name_ += std::string("+") + ggml_backend_dev_name(devices_[i]);

    // CPU extra buffer types (repacked layouts for quantized matmuls)
    ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(cpu_dev_);
    auto get_extra = (ggml_backend_dev_get_extra_bufts_t) ggml_backend_reg_get_proc_address(
        cpu_reg, "ggml_backend_dev_get_extra_bufts");
    if (get_extra) {
        // ggml 0.20.2's AMX kernels (the sapphirerapids CPU module) hit SIGILL (tilezero in a
        // compute thread) on this project's Xeon with AMX enabled by the OS: leave that layout
        // out unless asked for; that module's AVX-512 kernels and ggml's other repacked layouts stay.
        const char * amx_env = std::getenv("MIMO_GGML_AMX");
        const bool amx = amx_env && std::string(amx_env) == "1";
        for (ggml_backend_buffer_type_t * p = get_extra(cpu_dev_); p && *p; ++p) {
            if (!amx && std::string(ggml_backend_buft_name(*p)) == "AMX") continue;
            cpu_extra_bufts_.push_back(*p);
        }
    }
    MIMO_LOG_INFO("mimo-ggml: device %s, %d threads", device_name_.c_str(), n_threads_);
}

std::shared_ptr<Backend> make_backend(const std::string & device, const std::vector<std::string> & devices,
                                      const std::vector<double> & split, std::optional<int64_t> n_threads,
                                      bool repack_weights) {
    if (devices.empty()) {
        if (!split.empty()) {
            fail(ErrorKind::InvalidArgument,
                 "layer_split needs a list of devices (devices=[...], or --rpc on the command line)");
        }
        return std::make_shared<Backend>(device, n_threads, repack_weights);
    }
    if (!device.empty() && lower(device) != "auto") {
        fail(ErrorKind::InvalidArgument, strfmt("pass one device (device='%s') or a list (devices=[...]), not both",
                                                device.c_str()));
    }
    return std::make_shared<Backend>(devices, n_threads, repack_weights, split);
}

std::vector<size_t> layer_devices(const std::vector<double> & split, size_t n_devices, int n_layer) {
    std::vector<double> cumulative(n_devices);
    double total = 0;
    for (size_t d = 0; d < n_devices; ++d) {
        total += split.empty() ? 1.0 : split[d];
        cumulative[d] = total;
    }
    std::vector<size_t> out(size_t(std::max(n_layer, 0)), n_devices - 1);
    for (int il = 0; il < n_layer; ++il) {
        // the device whose share covers the middle of the layer
        const double at = (il + 0.5) / n_layer * total;
        for (size_t d = 0; d < n_devices; ++d) {
            if (at < cumulative[d]) {
                out[size_t(il)] = d;
                break;
            }
        }
    }
    return out;
}

ggml_backend_dev_t Backend::layer_device(int il, int n_layer) const {
    if (devices_.size() == 1 || n_layer <= 0 || il < 0 || il >= n_layer) return dev_;
    return devices_[layer_devices(split_, devices_.size(), n_layer)[size_t(il)]];
}

Backend::~Backend() = default;

ggml_backend_buffer_type_t Backend::weight_buffer_type() const { return ggml_backend_dev_buffer_type(dev_); }

Scheduler::Scheduler(const Backend & backend, size_t max_nodes) {
    auto free_all = [this] {
        for (ggml_backend_t b : instances_) ggml_backend_free(b);
        instances_.clear();
    };
    for (ggml_backend_dev_t dev : backend.devices()) {
        if (dev == backend.cpu_device()) continue;
        ggml_backend_t b = ggml_backend_dev_init(dev, nullptr);
        if (!b) {
            free_all();
            fail(ErrorKind::Backend, strfmt("could not initialise device %s", ggml_backend_dev_name(dev)));
        }
        instances_.push_back(b);
    }
    ggml_backend_t cpu = ggml_backend_dev_init(backend.cpu_device(), nullptr);
    if (!cpu) {
        free_all();
        fail(ErrorKind::Backend, "could not initialise the ggml CPU backend");
    }
    instances_.push_back(cpu);
    // the thread count through the registry: the same call works when the CPU backend is a loaded module
    ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(backend.cpu_device());
    auto set_threads = (ggml_backend_set_n_threads_t) ggml_backend_reg_get_proc_address(cpu_reg,
                                                                                       "ggml_backend_set_n_threads");
    if (set_threads) set_threads(cpu, backend.n_threads());
    // No persistent ggml thread pool: its workers would not exist in a fork()ed child, where the
    // next graph would wait for them forever; ggml's per-graph threads measured within noise of it.
    sched_ = ggml_backend_sched_new(instances_.data(), nullptr, int(instances_.size()), max_nodes, false, true);
    if (!sched_) {
        free_all();
        fail(ErrorKind::Backend, "could not create a ggml scheduler");
    }
}

Scheduler::~Scheduler() {
    // compute buffers on a device that has gone away (an RPC server) cannot be freed there
    try {
        ggml_backend_sched_free(sched_);
    } catch (const std::exception & e) {
        MIMO_LOG_WARN("mimo-ggml: freeing a scheduler: %s", e.what());
    }
    for (ggml_backend_t b : instances_) {
        try {
            ggml_backend_free(b);
        } catch (const std::exception & e) {
            MIMO_LOG_WARN("mimo-ggml: freeing a backend: %s", e.what());
        }
    }
}

}  // namespace mimo
