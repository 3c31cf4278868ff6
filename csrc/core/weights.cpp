#include "core/weights.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <sys/mman.h>

#include "core/errors.h"
#include "core/log.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"  // types only in a dispatching build: its functions come from the loaded module

namespace mimo {

// The CPU device's plain buffer type, through the device API (in a dispatching
// build the CPU backend is a loaded module, not linked in).
#define cpu_buffer_type() ggml_backend_dev_buffer_type(backend_->cpu_device())

WeightStore::WeightStore(std::shared_ptr<Backend> backend, const GgufFile & file)
    : backend_(std::move(backend)), file_(file) {}

void WeightStore::layer_stack(const char * layer_fmt, int64_t n_layer) {
    const std::string fmt = layer_fmt;
    const size_t at = fmt.find("%d");
    if (at == std::string::npos) fail(ErrorKind::Generic, "internal: a layer format without %d");
    stacks_.push_back({fmt.substr(0, at), fmt.substr(at + 2), n_layer});
}

ggml_backend_dev_t WeightStore::device_for(const std::string & name) const {
    if (backend_->devices().size() == 1) return backend_->device();
    for (const LayerStack & st : stacks_) {
        if (name.compare(0, st.prefix.size(), st.prefix) != 0) continue;
        size_t end = st.prefix.size();
        while (end < name.size() && end - st.prefix.size() < 9 && std::isdigit((unsigned char) name[end])) ++end;
        if (end == st.prefix.size() || name.compare(end, st.suffix.size(), st.suffix) != 0) continue;
        const int64_t il = std::atoll(name.substr(st.prefix.size(), end - st.prefix.size()).c_str());
        if (il < st.n_layer) return backend_->layer_device(int(il), int(st.n_layer));
    }
    return backend_->device();
}

WeightStore::~WeightStore() {
    for (auto b : buffers_) free_buffer_noexcept(b);  // a lost RPC server must not take the process down
    for (auto & m : mappings_) munmap(m.first, m.second);
    for (auto & kv : contexts_) ggml_free(kv.second);
}

ggml_context * WeightStore::context_for(ggml_backend_buffer_type_t buft) {
    auto it = contexts_.find(buft);
    if (it != contexts_.end()) return it->second;
    // room for every tensor of the file, twice (a tied table is declared as rows and as a matmul weight)
    const size_t n_max = 2 * file_.tensors().size() + 16;
    ggml_init_params params{/*mem_size=*/ggml_tensor_overhead() * n_max, /*mem_buffer=*/nullptr, /*no_alloc=*/true};
    ggml_context * ctx = ggml_init(params);
    if (!ctx) fail(ErrorKind::Backend, "out of memory creating a weight context");
    contexts_[buft] = ctx;
    return ctx;
}

// On CPU, a quantized matmul weight goes to the first extra buffer type
// (ggml's repacked layouts) that accepts a matmul with it, as llama.cpp does.
ggml_backend_buffer_type_t WeightStore::choose_buffer_type(const TensorInfo & info, Placement p,
                                                           ggml_backend_dev_t dev) {
    if (p == Placement::Host) return cpu_buffer_type();
    if (p == Placement::MatmulWeight && dev == backend_->cpu_device() && info.n_dims == 2 &&
        backend_->repack_weights()) {
        for (ggml_backend_buffer_type_t buft : backend_->cpu_extra_buffer_types()) {
            ggml_init_params params{ggml_tensor_overhead() * 4, nullptr, true};
            ggml_context * tmp = ggml_init(params);
            ggml_tensor * w = ggml_new_tensor(tmp, info.type, 2, info.ne);
            ggml_tensor * x = ggml_new_tensor_2d(tmp, GGML_TYPE_F32, info.ne[0], 8);
            ggml_tensor * op = ggml_mul_mat(tmp, w, x);
            ggml_backend_buffer_t dummy = ggml_backend_buft_alloc_buffer(buft, 0);
            w->buffer = dummy;
            const bool ok = ggml_backend_dev_supports_op(dev, op);
            ggml_backend_buffer_free(dummy);
            ggml_free(tmp);
            if (ok) return buft;
        }
    }
    return ggml_backend_dev_buffer_type(dev);
}

namespace {

const char * role_name(Role r) {
    switch (r) {
        case Role::Matmul: return "a matmul weight";
        case Role::MatmulExperts: return "stacked expert weights (mul_mat_id)";
        case Role::Rows: return "a row-gathered table (get_rows)";
        case Role::Conv: return "a convolution kernel";
        case Role::Float: return "a float vector read as F32";
    }
    return "a weight";
}

// integer and double types hold no float weights ggml can compute with
bool never_a_weight(ggml_type t) {
    return t == GGML_TYPE_I8 || t == GGML_TYPE_I16 || t == GGML_TYPE_I32 || t == GGML_TYPE_I64 ||
           t == GGML_TYPE_F64;
}

bool known_type(ggml_type t) {
    if (int(t) < 0 || int(t) >= GGML_TYPE_COUNT) return false;
    const ggml_type_traits * tr = ggml_get_type_traits(t);
    return tr && tr->blck_size > 0 && tr->type_size > 0;
}

// The CPU backend says it supports a mul_mat whatever the weight type, as long
// as the activations are F32; its kernel table says whether it can compute one.
const ggml_type_traits_cpu * cpu_type_traits(ggml_type t) {
#if defined(MIMO_GGML_DL)
    using traits_fn = const ggml_type_traits_cpu * (*)(ggml_type);
    static const traits_fn fn = (traits_fn) cpu_backend_symbol("ggml_get_type_traits_cpu");
    return fn ? fn(t) : nullptr;
#else
    return ggml_get_type_traits_cpu(t);
#endif
}

bool cpu_can_dot(ggml_type t) {
    const ggml_type_traits_cpu * tc = cpu_type_traits(t);
    if (!tc || !tc->vec_dot) return false;
    const ggml_type_traits_cpu * act = cpu_type_traits(tc->vec_dot_type);
    return tc->vec_dot_type == GGML_TYPE_F32 || (act && act->from_float != nullptr);
}

}  // namespace

// the device whose kernels run ops on weights in buft
ggml_backend_dev_t WeightStore::device_of(ggml_backend_buffer_type_t buft) const {
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    if (dev) return dev;
    return ggml_backend_buft_is_host(buft) ? backend_->cpu_device() : backend_->device();
}

bool WeightStore::type_suits(ggml_type type, const int64_t * ne, int n_dims, const WeightOptions & opt,
                             ggml_backend_buffer_type_t buft) const {
    if (!known_type(type) || never_a_weight(type)) return false;
    const ggml_type_traits * tr = ggml_get_type_traits(type);
    if (ne[0] % tr->blck_size != 0) return false;
    const bool float_type = type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
    if (opt.role == Role::Float) return type == GGML_TYPE_F32 || tr->to_float != nullptr;
    if (opt.role == Role::Conv && !float_type) return false;
    if (opt.role == Role::Rows && type != GGML_TYPE_F32 && !tr->to_float) return false;

    ggml_backend_dev_t dev = device_of(buft);
    const bool on_cpu = ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU;
    if (on_cpu && opt.role != Role::Rows && !cpu_can_dot(type)) return false;

    // the real op, on a weight placed in (a zero-size buffer of) buft
    ggml_init_params params{ggml_tensor_overhead() * 8, nullptr, true};
    ggml_context * tmp = ggml_init(params);
    if (!tmp) fail(ErrorKind::Backend, "out of memory checking a weight type");
    ggml_tensor * w = nullptr;
    ggml_tensor * op = nullptr;
    switch (opt.role) {
        case Role::Matmul: {
            w = ggml_new_tensor_2d(tmp, type, ne[0], n_dims > 1 ? ne[1] : 1);
            op = ggml_mul_mat(tmp, w, ggml_new_tensor_2d(tmp, GGML_TYPE_F32, ne[0], 8));
            break;
        }
        case Role::Conv: {  // (K, C_in, C_out) multiplied as (K * C_in, C_out)
            w = ggml_new_tensor_2d(tmp, type, ne[0] * (n_dims > 1 ? ne[1] : 1), n_dims > 2 ? ne[2] : 1);
            op = ggml_mul_mat(tmp, w, ggml_new_tensor_2d(tmp, GGML_TYPE_F32, w->ne[0], 8));
            break;
        }
        case Role::MatmulExperts: {  // (n_in, n_out, n_expert), one expert used by one token
            w = ggml_new_tensor_3d(tmp, type, ne[0], n_dims > 1 ? ne[1] : 1, n_dims > 2 ? ne[2] : 1);
            ggml_tensor * x = ggml_new_tensor_3d(tmp, GGML_TYPE_F32, ne[0], 1, 1);
            ggml_tensor * ids = ggml_new_tensor_2d(tmp, GGML_TYPE_I32, 1, 1);
            op = ggml_mul_mat_id(tmp, w, x, ids);
            break;
        }
        case Role::Rows: {
            w = ggml_new_tensor_2d(tmp, type, ne[0], n_dims > 1 ? ne[1] : 1);
            op = ggml_get_rows(tmp, w, ggml_new_tensor_1d(tmp, GGML_TYPE_I32, 1));
            break;
        }
        case Role::Float: break;
    }
    ggml_backend_buffer_t dummy = ggml_backend_buft_alloc_buffer(buft, 0);
    w->buffer = dummy;
    const bool ok = op && ggml_backend_dev_supports_op(dev, op);
    w->buffer = nullptr;
    if (dummy) ggml_backend_buffer_free(dummy);
    ggml_free(tmp);
    return ok;
}

void WeightStore::check_type(const TensorInfo & info, const WeightOptions & opt,
                             ggml_backend_buffer_type_t buft) const {
    if (type_suits(info.type, info.ne, info.n_dims, opt, buft)) return;
    std::string allowed;
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        if (!known_type(ggml_type(t)) || !type_suits(ggml_type(t), info.ne, info.n_dims, opt, buft)) continue;
        if (!allowed.empty()) allowed += ", ";
        allowed += ggml_type_name(ggml_type(t));
    }
    const ggml_backend_dev_t dev = device_of(buft);
    fail(ErrorKind::ModelLoad,
         strfmt("%s: tensor '%s' has type %s, which %s cannot use as %s; allowed: %s", file_.path().c_str(),
                printable(info.name).c_str(), known_type(info.type) ? ggml_type_name(info.type) : "unknown",
                dev ? ggml_backend_dev_name(dev) : "this device", role_name(opt.role),
                allowed.empty() ? "none for this shape" : allowed.c_str()));
}

ggml_tensor * WeightStore::declare(const TensorInfo & info, std::initializer_list<int64_t> ne, WeightOptions opt) {
    if (loaded_) fail(ErrorKind::Generic, "internal: tensor declared after the weights were loaded");
    const int want_dims = int(ne.size());
    std::vector<int64_t> want(ne);
    bool same = info.n_dims <= want_dims;
    bool empty = false;
    int d = 0;
    for (int64_t v : ne) {
        same = same && info.ne[d] == v;
        empty = empty || v <= 0;
        ++d;
    }
    if (!same || empty) {
        fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' has shape %s, expected %s", file_.path().c_str(),
                                          printable(info.name).c_str(), shape_string(info.n_dims, info.ne).c_str(),
                                          shape_string(want_dims, want.data()).c_str()));
    }
    // the type must suit the role where the tensor would live without ggml's repacking
    ggml_backend_dev_t dev = device_for(info.name);
    ggml_backend_buffer_type_t plain =
        opt.placement == Placement::Host ? cpu_buffer_type() : ggml_backend_dev_buffer_type(dev);
    check_type(info, opt, plain);
    const ggml_type type = opt.as_f32 ? GGML_TYPE_F32 : info.type;
    ggml_context * ctx = context_for(choose_buffer_type(info, opt.placement, dev));
    ggml_tensor * t = ggml_new_tensor(ctx, type, want_dims, want.data());
    ggml_set_name(t, info.name.c_str());
    pending_.push_back({t, &info});
    return t;
}

ggml_tensor * WeightStore::require(const std::string & name, std::initializer_list<int64_t> ne, WeightOptions opt) {
    const TensorInfo * info = file_.find_tensor(name);
    if (!info) {
        fail(ErrorKind::ModelLoad, strfmt("%s lacks the tensor '%s' (architecture '%s'); the file is incomplete or "
                                          "of another model",
                                          file_.path().c_str(), name.c_str(),
                                          printable(file_.str_or("general.architecture", "")).c_str()));
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

std::map<std::string, size_t> WeightStore::bytes_by_device() const {
    std::map<std::string, size_t> out;
    for (auto b : buffers_) {
        ggml_backend_dev_t dev = device_of(ggml_backend_buffer_get_type(b));
        out[dev ? ggml_backend_dev_name(dev) : "?"] += ggml_backend_buffer_get_size(b);
    }
    return out;
}

size_t WeightStore::bytes() const {
    size_t n = 0;
    for (auto b : buffers_) n += ggml_backend_buffer_get_size(b);
    return n;
}

}  // namespace mimo
