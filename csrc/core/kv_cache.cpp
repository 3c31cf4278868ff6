#include "core/kv_cache.h"

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
    ggml_init_params params{ggml_tensor_overhead() * (2 * layers.size() + 4), nullptr, true};
    ctx_ = ggml_init(params);
    for (size_t il = 0; il < layers.size(); ++il) {
        const KvLayerShape & s = layers[il];
        if (s.head_dim % ggml_blck_size(type) != 0) {
            ggml_free(ctx_);
            fail(ErrorKind::InvalidArgument,
                 strfmt("kv_type %s needs head dimensions that are multiples of %lld; this model has %lld",
                        ggml_type_name(type), (long long) ggml_blck_size(type), (long long) s.head_dim));
        }
        k_.push_back(ggml_new_tensor_2d(ctx_, type, s.k_width, s.n_slots));
        v_.push_back(ggml_new_tensor_2d(ctx_, type, s.v_width, s.n_slots));
        ggml_format_name(k_.back(), "cache_k_l%zu", il);
        ggml_format_name(v_.back(), "cache_v_l%zu", il);
    }
    buffer_ = ggml_backend_alloc_ctx_tensors_from_buft(ctx_, backend.weight_buffer_type());
    if (!buffer_) {
        ggml_free(ctx_);
        fail(ErrorKind::Backend, "out of memory allocating the KV cache; lower n_ctx or use kv_type='q8_0'");
    }
    // Zero once so that masked-out slots never hold NaN bit patterns.
    ggml_backend_buffer_clear(buffer_, 0);
}

KvCache::~KvCache() {
    free_buffer_noexcept(buffer_);  // a lost RPC server cannot free its copy: log, do not abort
    if (ctx_) ggml_free(ctx_);
}

size_t KvCache::bytes() const { return buffer_ ? ggml_backend_buffer_get_size(buffer_) : 0; }

size_t KvCache::bytes_per_position() const {
    size_t n = 0;
    for (size_t il = 0; il < k_.size(); ++il) n += k_[il]->nb[1] + v_[il]->nb[1];
    return n;
}

}  // namespace mimo
