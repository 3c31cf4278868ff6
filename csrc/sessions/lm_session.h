// The ASR language model as a loaded, immutable object (LmWeights) and the
// per-request decoding state over it (LmSession: KV cache, scheduler, the
// reusable single-token step graph).
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
#include "models/qwen2.h"

namespace mimo {

class LmWeights : public LoadedModel<Qwen2Model> {
public:
    LmWeights(const std::string & path, std::shared_ptr<Backend> backend);
};

struct LmOutput {
    std::vector<float> logits;  // n_out rows of n_vocab
    std::vector<float> hidden;  // n_out rows of n_embd (if asked)
    int64_t n_out = 0;
};

class LmSession {
public:
    LmSession(std::shared_ptr<const LmWeights> weights, int64_t n_ctx, ggml_type kv_type);
    ~LmSession();
    LmSession(const LmSession &) = delete;
    LmSession & operator=(const LmSession &) = delete;

    // Appends n positions (token ids or input embeddings of n_embd floats
    // each) to the context and returns logits for the last n_out of them.
    LmOutput eval(const int32_t * tokens, const float * embeddings, int64_t n, int64_t n_out, bool want_hidden);

    // Embedding-table rows for ids (n_embd floats each).
    std::vector<float> embed(const int32_t * tokens, int64_t n);

    int64_t n_past() const { return n_past_; }
    int64_t n_ctx() const { return n_ctx_; }
    void reset() { n_past_ = 0; }
    void truncate(int64_t n);  // forget positions >= n
    const KvCache & kv() const { return *kv_; }
    const LmWeights & weights() const { return *weights_; }

    static constexpr int64_t kMaxBatch = 512;  // positions per prefill graph
    static constexpr int64_t kKvBucket = 256;  // attended rows grow in these steps

private:
    struct Graph;
    Graph & prepare(int64_t n, int64_t n_kv, int64_t n_out, bool use_tokens);
    void run_chunk(const int32_t * tokens, const float * embeddings, int64_t n, int64_t n_out, bool want_hidden,
                   LmOutput & out);

    std::shared_ptr<const LmWeights> weights_;
    std::unique_ptr<KvCache> kv_;
    ggml_backend_sched_t sched_ = nullptr;
    std::unique_ptr<Graph> graph_;  // the last graph, kept for reuse
    int64_t n_ctx_ = 0;
    int64_t n_past_ = 0;
    std::vector<uint16_t> mask_;   // F16 scratch
};

}  // namespace mimo
