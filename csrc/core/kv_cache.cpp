#include "core/kv_cache.h"

#include <algorithm>

#include "core/backend.h"
#include "core/errors.h"
#include "ggml-alloc.h"

namespace mimo {

ggml_type parse_kv_type(const std::string & name) {
    if (name == "f16") return GGML_TYPE_F16;
    if (name == "f32") return GGML_TYPE_F32;
    if (name == "q8_0") return GGML_TYPE_Q8_0;
    fail(ErrorKind::InvalidArgument, strfmt("kv_type must be 'f16', 'f32' or 'q8_0', got '%s'", name.c_str()));
}

KvCache::KvCache(const Backend & backend, const std::vector<KvLayerShape> & layers, ggml_type type) : type_(type) {
    // refuse sizes no device has before ggml sees them (its size arithmetic would overflow)
    long double total = 0;
    for (const KvLayerShape & s : layers) {
        total += (long double) (s.k_width + s.v_width) * (long double) s.n_slots * ggml_type_size(type) /
                 ggml_blck_size(type);
    }
    if (total > (long double) (uint64_t(1) << 46)) {
        fail(ErrorKind::InvalidArgument,
             strfmt("the KV cache would need %.3g GiB; lower n_ctx (it holds one row per position)",
                    double(total / (1024.0L * 1024 * 1024))));
    }
    // the device of each layer: that of the weight it sits beside
    std::vector<ggml_backend_buffer_type_t> bufts;
    std::vector<size_t> context_of(layers.size());
    for (size_t il = 0; il < layers.size(); ++il) {
        ggml_backend_buffer_type_t buft = backend.weight_buffer_type();
        const ggml_tensor * w = layers[il].beside;
        if (w && w->buffer) {
            ggml_backend_dev_t dev = ggml_backend_buft_get_device(ggml_backend_buffer_get_type(w->buffer));
            if (dev) buft = ggml_backend_dev_buffer_type(dev);  // the plain type, not a repacked layout
        }
        auto it = std::find(bufts.begin(), bufts.end(), buft);
        context_of[il] = size_t(it - bufts.begin());
        if (it == bufts.end()) bufts.push_back(buft);
    }
    auto free_all = [this] {
        for (auto b : buffers_) free_buffer_noexcept(b);
        for (auto c : contexts_) ggml_free(c);
        buffers_.clear();
        contexts_.clear();
    };
    for (size_t i = 0; i < bufts.size(); ++i) {
        ggml_init_params params{ggml_tensor_overhead() * (2 * layers.size() + 4), nullptr, true};
        contexts_.push_back(ggml_init(params));
    }
    for (size_t il = 0; il < layers.size(); ++il) {
        const KvLayerShape & s = layers[il];
        if (s.head_dim % ggml_blck_size(type) != 0) {
            free_all();
            fail(ErrorKind::InvalidArgument,
                 strfmt("kv_type %s needs head dimensions that are multiples of %lld; this model has %lld",
                        ggml_type_name(type), (long long) ggml_blck_size(type), (long long) s.head_dim));
        }
        ggml_context * ctx = contexts_[context_of[il]];
        k_.push_back(ggml_new_tensor_2d(ctx, type, s.k_width, s.n_slots));
        v_.push_back(ggml_new_tensor_2d(ctx, type, s.v_width, s.n_slots));
        ggml_format_name(k_.back(), "cache_k_l%zu", il);
        ggml_format_name(v_.back(), "cache_v_l%zu", il);
    }
    for (size_t i = 0; i < bufts.size(); ++i) {
        ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(contexts_[i], bufts[i]);
        if (!buf) {
            free_all();
            fail(ErrorKind::Backend, "out of memory allocating the KV cache; lower n_ctx or use kv_type='q8_0'");
        }
        // Zero once so that masked-out slots never hold NaN bit patterns.
        ggml_backend_buffer_clear(buf, 0);
        buffers_.push_back(buf);
    }
}

KvCache::~KvCache() {
    for (auto b : buffers_) free_buffer_noexcept(b);  // a lost RPC server cannot free its copy: log, do not abort
    for (auto c : contexts_) ggml_free(c);
}

size_t KvCache::bytes() const {
    size_t n = 0;
    for (auto b : buffers_) n += ggml_backend_buffer_get_size(b);
    return n;
}

size_t KvCache::bytes_per_position() const {
    size_t n = 0;
    for (size_t il = 0; il < k_.size(); ++il) n += k_[il]->nb[1] + v_[il]->nb[1];
    return n;
}

}  // namespace mimo
