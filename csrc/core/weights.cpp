#include "core/weights.h"

#include <cstdio>
#include <cerrno>
#include <cstring>
#include <sys/mman.h>

#include "core/errors.h"
#include "core/log.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"

namespace mimo {

// The CPU device's plain buffer type, through the device API (in a dispatching
// build the CPU backend is a loaded module, not linked in).
#define cpu_buffer_type() ggml_backend_dev_buffer_type(backend_->cpu_device())

WeightStore::WeightStore(std::shared_ptr<Backend> backend, const GgufFile & file)
    : backend_(std::move(backend)), file_(file) {}

WeightStore::~WeightStore() {
    for (auto b : buffers_) free_buffer_noexcept(b);  // a lost RPC server must not take the process down
    for (auto & m : mappings_) munmap(m.first, m.second);
    for (auto & kv : contexts_) ggml_free(kv.second);
}

ggml_context * WeightStore::context_for(ggml_backend_buffer_type_t buft) {
    auto it = contexts_.find(buft);
    if (it != contexts_.end()) return it->second;
    ggml_init_params params{/*mem_size=*/ggml_tensor_overhead() * 4096, /*mem_buffer=*/nullptr, /*no_alloc=*/true};
    ggml_context * ctx = ggml_init(params);
    if (!ctx) fail(ErrorKind::Backend, "out of memory creating a weight context");
    contexts_[buft] = ctx;
    return ctx;
}

// On CPU, a quantized matmul weight goes to the first extra buffer type
// (ggml's repacked layouts) that accepts a matmul with it, as llama.cpp does.
ggml_backend_buffer_type_t WeightStore::choose_buffer_type(const TensorInfo & info, Placement p) {
    if (p == Placement::Host) return cpu_buffer_type();
    if (p == Placement::MatmulWeight && backend_->main_is_cpu() && info.n_dims == 2 && backend_->repack_weights()) {
        for (ggml_backend_buffer_type_t buft : backend_->cpu_extra_buffer_types()) {
            ggml_init_params params{ggml_tensor_overhead() * 4, nullptr, true};
            ggml_context * tmp = ggml_init(params);
            ggml_tensor * w = ggml_new_tensor(tmp, info.type, 2, info.ne);
            ggml_tensor * x = ggml_new_tensor_2d(tmp, GGML_TYPE_F32, info.ne[0], 8);
            ggml_tensor * op = ggml_mul_mat(tmp, w, x);
            ggml_backend_buffer_t dummy = ggml_backend_buft_alloc_buffer(buft, 0);
            w->buffer = dummy;
            const bool ok = ggml_backend_dev_supports_op(backend_->device(), op);
            ggml_backend_buffer_free(dummy);
            ggml_free(tmp);
            if (ok) return buft;
        }
    }
    return backend_->weight_buffer_type();
}

ggml_tensor * WeightStore::declare(const TensorInfo & info, std::initializer_list<int64_t> ne, WeightOptions opt) {
    if (loaded_) fail(ErrorKind::Generic, "internal: tensor declared after the weights were loaded");
    const int want_dims = int(ne.size());
    bool same = info.n_dims <= want_dims;
    int d = 0;
    for (int64_t v : ne) {
        same = same && info.ne[d] == v;
        ++d;
    }
    if (!same) {
        std::vector<int64_t> want(ne);
        fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' has shape %s, expected %s", file_.path().c_str(),
                                          info.name.c_str(), shape_string(info.n_dims, info.ne).c_str(),
                                          shape_string(want_dims, want.data()).c_str()));
    }
    const ggml_type type = opt.as_f32 ? GGML_TYPE_F32 : info.type;
    if (opt.as_f32 && info.type != GGML_TYPE_F32 && !ggml_get_type_traits(info.type)->to_float) {
        fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' has type %s, which cannot be read as F32",
                                          file_.path().c_str(), info.name.c_str(), ggml_type_name(info.type)));
    }
    ggml_context * ctx = context_for(choose_buffer_type(info, opt.placement));
    ggml_tensor * t = ggml_new_tensor(ctx, type, want_dims, std::vector<int64_t>(ne).data());
    ggml_set_name(t, info.name.c_str());
    pending_.push_back({t, &info});
    return t;
}

ggml_tensor * WeightStore::require(const std::string & name, std::initializer_list<int64_t> ne, WeightOptions opt) {
    const TensorInfo * info = file_.find_tensor(name);
    if (!info) {
        fail(ErrorKind::ModelLoad, strfmt("%s lacks the tensor '%s' (architecture '%s'); the file is incomplete or "
                                          "of another model",
                                          file_.path().c_str(), name.c_str(), file_.architecture().c_str()));
    }
    return declare(*info, ne, opt);
}

ggml_tensor * WeightStore::optional(const std::string & name, std::initializer_list<int64_t> ne, WeightOptions opt) {
    const TensorInfo * info = file_.find_tensor(name);
    return info ? declare(*info, ne, opt) : nullptr;
}

// Plain CPU weights live in fresh anonymous memory advised for transparent
// huge pages before first touch: decode streams every weight once per token,
// and 2 MiB pages read measurably faster than 4 KiB ones (ggml's own
// allocation is already touched when it returns, too late to advise).
ggml_backend_buffer_t WeightStore::alloc_anonymous(ggml_context * ctx) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    ggml_backend_buffer_type_t buft = cpu_buffer_type();
    const size_t align = ggml_backend_buft_get_alignment(buft);
    size_t size = 0;
    for (ggml_tensor * t = ggml_get_first_tensor(ctx); t; t = ggml_get_next_tensor(ctx, t)) {
        size += GGML_PAD(ggml_backend_buft_get_alloc_size(buft, t), align);
    }
    if (size == 0) return nullptr;
    void * mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    if (madvise(mem, size, MADV_HUGEPAGE) != 0) {
        MIMO_LOG_DEBUG("mimo-ggml: madvise(MADV_HUGEPAGE) failed: %s", std::strerror(errno));
    }
    // through the device API: in a dispatching build the CPU backend is a loaded module
    ggml_backend_buffer_t buf = ggml_backend_dev_buffer_from_host_ptr(backend_->cpu_device(), mem, size, size);
    if (!buf) {
        munmap(mem, size);
        return nullptr;
    }
    mappings_.emplace_back(mem, size);
    ggml_tallocr talloc = ggml_tallocr_new(buf);
    for (ggml_tensor * t = ggml_get_first_tensor(ctx); t; t = ggml_get_next_tensor(ctx, t)) {
        if (ggml_tallocr_alloc(&talloc, t) != GGML_STATUS_SUCCESS) {
            fail(ErrorKind::Backend, "internal: weight tensor does not fit its buffer");
        }
    }
    return buf;
#else
    (void) ctx;
    return nullptr;
#endif
}

void WeightStore::load() {
    if (loaded_) return;
    for (auto & kv : contexts_) {
        ggml_backend_buffer_t buf = kv.first == cpu_buffer_type() ? alloc_anonymous(kv.second) : nullptr;
        if (!buf) buf = ggml_backend_alloc_ctx_tensors_from_buft(kv.second, kv.first);
        if (!buf) {
            fail(ErrorKind::Backend, strfmt("out of memory allocating the weights of %s in %s buffers",
                                            file_.path().c_str(), ggml_backend_buft_name(kv.first)));
        }
        ggml_backend_buffer_set_usage(buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
        MIMO_LOG_INFO("mimo-ggml: weights buffer %s: %.1f MiB", ggml_backend_buft_name(kv.first),
                      ggml_backend_buffer_get_size(buf) / 1048576.0);
        buffers_.push_back(buf);
    }
    FILE * f = std::fopen(file_.path().c_str(), "rb");
    if (!f) fail(ErrorKind::ModelLoad, strfmt("cannot open %s for reading", file_.path().c_str()));
    std::vector<uint8_t> staging;
    std::vector<float> converted;
    try {
        for (const Pending & p : pending_) {
            const TensorInfo & info = *p.info;
            ggml_tensor * t = p.tensor;
            // Plain CPU buffers are filled in place; anything else (device
            // memory, repacked layouts, F32 conversion) goes through tensor_set.
            const bool direct = t->type == info.type &&
                                ggml_backend_buffer_get_type(t->buffer) == cpu_buffer_type();
            uint8_t * dst = nullptr;
            if (direct) {
                dst = (uint8_t *) t->data;
            } else {
                staging.resize(info.nbytes);
                dst = staging.data();
            }
            if (fseeko(f, off_t(info.offset), SEEK_SET) != 0 || std::fread(dst, 1, info.nbytes, f) != info.nbytes) {
                fail(ErrorKind::ModelLoad, strfmt("%s: could not read the data of tensor '%s'", file_.path().c_str(),
                                                  info.name.c_str()));
            }
            if (direct) continue;
            if (t->type != info.type) {  // as_f32 conversion
                const int64_t n = ggml_nelements(t);
                converted.resize(size_t(n));
                ggml_get_type_traits(info.type)->to_float(staging.data(), converted.data(), n);
                ggml_backend_tensor_set(t, converted.data(), 0, ggml_nbytes(t));
            } else {
                ggml_backend_tensor_set(t, staging.data(), 0, info.nbytes);
            }
        }
    } catch (...) {
        std::fclose(f);
        throw;
    }
    std::fclose(f);
    loaded_ = true;
    MIMO_LOG_INFO("mimo-ggml: loaded %zu tensors (%.1f MiB) from %s", pending_.size(), bytes() / 1048576.0,
                  file_.path().c_str());
}

size_t WeightStore::bytes() const {
    size_t n = 0;
    for (auto b : buffers_) n += ggml_backend_buffer_get_size(b);
    return n;
}

}  // namespace mimo
