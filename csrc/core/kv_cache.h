// Per-session attention memory: for each layer one K and one V tensor with a
// row of (n_head_kv * head_dim) values per slot. Layers may have different
// widths and slot counts (a sliding-window layer needs only its window, used
// as a ring), so the cache is described layer by layer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "ggml.h"

namespace mimo {

struct KvLayerShape {
    int64_t k_width;   // n_head_kv * head_dim_k
    int64_t v_width;   // n_head_kv * head_dim_v
    int64_t head_dim;  // smallest head dim (block-size check for quantized caches)
    int64_t n_slots;   // positions held
    // a weight of the layer: the cache lives on that weight's device (layers
    // split over devices); nullptr: the Backend's first device
    const ggml_tensor * beside = nullptr;
};

// "f16" | "f32" | "q8_0" -> ggml type; anything else raises InvalidArgument
ggml_type parse_kv_type(const std::string & name);

class KvCache {
public:
    KvCache(const Backend & backend, const std::vector<KvLayerShape> & layers, ggml_type type);
    ~KvCache();
    KvCache(const KvCache &) = delete;
    KvCache & operator=(const KvCache &) = delete;

    ggml_tensor * k(size_t layer) const { return k_[layer]; }
    ggml_tensor * v(size_t layer) const { return v_[layer]; }
    int64_t n_slots(size_t layer) const { return k_[layer]->ne[1]; }
    size_t n_layers() const { return k_.size(); }
    ggml_type type() const { return type_; }
    size_t bytes() const;
    size_t bytes_per_position() const;  // over layers that hold every position

private:
    ggml_type type_;
    std::vector<ggml_context *> contexts_;        // one per device the layers live on
    std::vector<ggml_backend_buffer_t> buffers_;
    std::vector<ggml_tensor *> k_, v_;
};

}  // namespace mimo
