// system_info(), device listing and the log bridge to Python's logging.
#include <Python.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <sys/mman.h>

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
    py::dict info;
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
    return info;
}

// Sum of n words: the inner loop of the bandwidth probe. The AVX2 variant
// issues 256-bit loads (what ggml's kernels use); the portable one is the
// fallback on CPUs without it.
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) uint64_t sum_words_avx2(const uint64_t * p, size_t n) {
    typedef long long v4 __attribute__((vector_size(32)));
    v4 a = {0, 0, 0, 0}, b = a, c = a, d = a;
    const v4 * v = (const v4 *) p;
    for (size_t i = 0; i + 16 <= n; i += 16, v += 4) {
        a += v[0];
        b += v[1];
        c += v[2];
        d += v[3];
    }
    a += b + c + d;
    return uint64_t(a[0] + a[1] + a[2] + a[3]);
}
#endif

uint64_t sum_words(const uint64_t * p, size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2")) return sum_words_avx2(p, n);
#endif
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    return s0 + s1 + s2 + s3;
}

// Best-of-N read bandwidth (bytes/s) of n_threads summing disjoint slices
// of a buffer much larger than the caches, in huge-page memory like the
// weights: the roofline denominator the benches print beside their timings.
double measure_read_bandwidth(size_t bytes, int n_threads, int repeats) {
    const size_t n = bytes / sizeof(uint64_t) / 64 * 64;
    void * mem = mmap(nullptr, n * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
    madvise(mem, n * sizeof(uint64_t), MADV_HUGEPAGE);
#endif
    uint64_t * buf = (uint64_t *) mem;
    for (size_t i = 0; i < n; ++i) buf[i] = i;
    double best = 0.0;
    std::vector<uint64_t> sums(static_cast<size_t>(n_threads));
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int t = 0; t < n_threads; ++t) {
            pool.emplace_back([&, t] {
                const size_t b = n / 64 * size_t(t) / size_t(n_threads) * 64;
                const size_t e = n / 64 * size_t(t + 1) / size_t(n_threads) * 64;
                sums[size_t(t)] = sum_words(buf + b, e - b);
            });
        }
        for (auto & th : pool) th.join();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, double(n * sizeof(uint64_t)) / s);
    }
    munmap(mem, n * sizeof(uint64_t));
    return best;
}

}  // namespace

void bind_system(py::module_ & m) {
    enable_log_forwarding(true);
    m.def("_set_log_forwarding", &enable_log_forwarding, py::arg("on"));
    m.def("measure_read_bandwidth", [](size_t bytes, int n_threads, int repeats) {
        py::gil_scoped_release nogil;
        return measure_read_bandwidth(bytes, n_threads, repeats);
    }, py::arg("bytes") = size_t(1) << 30, py::arg("n_threads") = 2, py::arg("repeats") = 3,
       "memory read bandwidth in bytes/s (best of repeats), for benchmark rooflines");
    m.def("system_info", &system_info, "ggml version, compute devices and CPU features of this build");
}

}  // namespace mimo::bindings
