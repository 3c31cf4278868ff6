// The MiMo-V2 MoE text model as a loaded, immutable object (TextWeights) and
// the per-request decoding state over it (TextSession).
//
// KV memory: full-attention layers hold n_ctx positions (slot = position);
// sliding-window layers hold a ring of (window_keys - 1 + max_batch) slots
// (slot = position mod ring size), which is all a chunk of up to max_batch
// new positions can see, so SWA memory stays fixed however long the context.
// The session records the absolute position held by every ring slot and
// builds both masks (full causal, SWA window) on the host from them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/gguf_file.h"
#include "core/loaded_model.h"
#include "core/kv_cache.h"
#include "core/weights.h"
#include "models/mimo2.h"

namespace mimo {

class TextWeights : public LoadedModel<Mimo2Model> {
public:
    TextWeights(const std::string & path, std::shared_ptr<Backend> backend);
};

class TextSession {
public:
    // window_keys: keys a SWA query sees, itself included (0: the file's
    // sliding_window_keys, default 129). max_batch: positions per graph
    // (longer inputs are split), which also sizes the SWA rings.
    TextSession(std::shared_ptr<const TextWeights> weights, int64_t n_ctx, ggml_type kv_type, int64_t window_keys = 0,
                int64_t max_batch = kDefaultMaxBatch);
    ~TextSession();
    TextSession(const TextSession &) = delete;
    TextSession & operator=(const TextSession &) = delete;

    // Appends n tokens to the context; returns logits of the last n_out of
    // them (n_out rows of n_vocab floats).
    std::vector<float> eval(const int32_t * tokens, int64_t n, int64_t n_out);

    int64_t n_past() const { return n_past_; }
    int64_t n_ctx() const { return n_ctx_; }
    int64_t window_keys() const { return window_keys_; }
    int64_t swa_slots() const { return swa_slots_; }
    int64_t max_batch() const { return max_batch_; }
    void reset();
    // Forget positions >= n. On SWA rings only possible while the window
    // before n is still held (at most max_batch positions back from the end
    // after a long context); otherwise raises InvalidArgument.
    void truncate(int64_t n);
    bool can_truncate(int64_t n) const;

    const KvCache & kv() const { return *kv_; }
    size_t kv_bytes_per_token() const;  // bytes each context position adds (full layers)
    size_t kv_bytes_swa() const;        // fixed bytes of the SWA rings
    const TextWeights & weights() const { return *weights_; }

    static constexpr int64_t kDefaultMaxBatch = 512;  // positions per graph
    static constexpr int64_t kKvBucket = 256;  // attended rows grow in these steps

private:
    struct Graph;
    Graph & prepare(int64_t n, int64_t n_kv_full, int64_t n_kv_swa, int64_t n_out);
    void run_chunk(const int32_t * tokens, int64_t n, int64_t n_out, std::vector<float> & logits);

    std::shared_ptr<const TextWeights> weights_;
    std::unique_ptr<KvCache> kv_;
    ggml_backend_sched_t sched_ = nullptr;
    std::unique_ptr<Graph> graph_;  // the last graph, kept for reuse
    int64_t n_ctx_ = 0;
    int64_t n_past_ = 0;
    int64_t window_keys_ = 0;
    int64_t max_batch_ = kDefaultMaxBatch;
    int64_t swa_slots_ = 0;
    bool has_full_ = false, has_swa_ = false;
    std::vector<int64_t> swa_pos_;  // absolute position held by each ring slot, -1: empty
    std::vector<uint16_t> mask_;    // F16 scratch
};

}  // namespace mimo
