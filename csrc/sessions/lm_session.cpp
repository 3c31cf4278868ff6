#include "sessions/lm_session.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/errors.h"
#include "core/graph.h"
#include "core/log.h"
#include "models/mimo_asr_names.h"
#include "models/mimo_tokenizer_names.h"

namespace mimo {

LmWeights::LmWeights(const std::string & path, std::shared_ptr<Backend> backend)
    : LoadedModel(open_gguf_of_arch(path, names::asr::kArch, "a MiMo-V2.5-ASR language-model GGUF",
                                    {{names::tok::kArch, "this is the audio-tokenizer file: pass it as the tokenizer, "
                                                         "not the model"}}),
                  std::move(backend), [](const GgufFile & file, WeightStore & store) {
                      return std::make_unique<Qwen2Model>(file, store, names::asr::kLlmKeyPrefix);
                  }) {}

struct LmSession::Graph : GraphArena {
    using GraphArena::GraphArena;
    LmGraphInputs in;
    LmGraphOutputs out;
    int64_t n = 0, n_kv = 0, n_out = 0;
    bool use_tokens = false;
};

LmSession::LmSession(std::shared_ptr<const LmWeights> weights, int64_t n_ctx, ggml_type kv_type)
    : weights_(std::move(weights)), n_ctx_(n_ctx) {
    const Qwen2HParams & hp = weights_->model().hparams();
    if (n_ctx <= 0) fail(ErrorKind::InvalidArgument, strfmt("n_ctx must be positive, got %lld", (long long) n_ctx));
    kv_ = std::make_unique<KvCache>(weights_->backend(), weights_->model().kv_shapes(n_ctx), kv_type);
    sched_ = weights_->backend()->new_scheduler(size_t(64 * hp.n_layer + 512));
    MIMO_LOG_INFO("mimo-ggml: LM session n_ctx %lld, KV %s %.1f MiB", (long long) n_ctx, ggml_type_name(kv_type),
                  kv_->bytes() / 1048576.0);
}

LmSession::~LmSession() {
    graph_.reset();
    if (sched_) ggml_backend_sched_free(sched_);
}

void LmSession::truncate(int64_t n) {
    if (n < 0 || n > n_past_) {
        fail(ErrorKind::InvalidArgument,
             strfmt("truncate(%lld): must be between 0 and the current length %lld", (long long) n, (long long) n_past_));
    }
    n_past_ = n;
}

LmSession::Graph & LmSession::prepare(int64_t n, int64_t n_kv, int64_t n_out, bool use_tokens) {
    if (graph_ && graph_->n == n && graph_->n_kv == n_kv && graph_->n_out == n_out && graph_->use_tokens == use_tokens) {
        return *graph_;  // same shapes: reuse the allocated graph, only inputs change
    }
    graph_.reset();
    const Qwen2HParams & hp = weights_->model().hparams();
    const size_t max_nodes = size_t(64 * hp.n_layer + 512);
    auto g = std::make_unique<Graph>(max_nodes);
    g->n = n;
    g->n_kv = n_kv;
    g->n_out = n_out;
    g->use_tokens = use_tokens;
    LmGraphInputs & in = g->in;
    if (use_tokens) {
        in.tokens = ggml_new_tensor_1d(g->ctx, GGML_TYPE_I32, n);
        ggml_set_input(in.tokens);
    } else {
        in.embeddings = ggml_new_tensor_2d(g->ctx, GGML_TYPE_F32, hp.n_embd, n);
        ggml_set_input(in.embeddings);
    }
    in.positions = ggml_new_tensor_1d(g->ctx, GGML_TYPE_I32, n);
    in.slots = ggml_new_tensor_1d(g->ctx, GGML_TYPE_I64, n);
    in.mask = ggml_new_tensor_2d(g->ctx, GGML_TYPE_F16, n_kv, n);
    ggml_set_input(in.positions);
    ggml_set_input(in.slots);
    ggml_set_input(in.mask);
    in.n_kv = n_kv;
    in.n_out = n_out;
    g->out = weights_->model().build(g->ctx, g->gf, in, *kv_);
    sched_alloc_graph(sched_, g->gf, "language-model");
    graph_ = std::move(g);
    return *graph_;
}

void LmSession::run_chunk(const int32_t * tokens, const float * embeddings, int64_t n, int64_t n_out, bool want_hidden,
                          LmOutput & out) {
    const Qwen2HParams & hp = weights_->model().hparams();
    const int64_t end = n_past_ + n;
    const int64_t n_kv = std::min(n_ctx_, (end + kKvBucket - 1) / kKvBucket * kKvBucket);
    Graph & g = prepare(n, n_kv, n_out, tokens != nullptr);

    if (tokens) {
        ggml_backend_tensor_set(g.in.tokens, tokens, 0, size_t(n) * sizeof(int32_t));
    } else {
        ggml_backend_tensor_set(g.in.embeddings, embeddings, 0, size_t(n * hp.n_embd) * sizeof(float));
    }
    std::vector<int32_t> pos(static_cast<size_t>(n));
    std::vector<int64_t> slots(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        pos[size_t(i)] = int32_t(n_past_ + i);
        slots[size_t(i)] = n_past_ + i;
    }
    ggml_backend_tensor_set(g.in.positions, pos.data(), 0, pos.size() * sizeof(int32_t));
    ggml_backend_tensor_set(g.in.slots, slots.data(), 0, slots.size() * sizeof(int64_t));
    // causal mask: query i (absolute position n_past + i) sees slots 0..n_past + i
    const uint16_t zero = ggml_fp32_to_fp16(0.0f), minus_inf = ggml_fp32_to_fp16(-INFINITY);
    mask_.assign(size_t(n_kv * n), minus_inf);
    for (int64_t i = 0; i < n; ++i) {
        std::fill_n(mask_.begin() + i * n_kv, n_past_ + i + 1, zero);
    }
    ggml_backend_tensor_set(g.in.mask, mask_.data(), 0, mask_.size() * sizeof(uint16_t));

    if (ggml_backend_sched_graph_compute(sched_, g.gf) != GGML_STATUS_SUCCESS) {
        fail(ErrorKind::Backend, "the language-model graph failed to compute");
    }
    n_past_ = end;

    const size_t lrow = size_t(hp.n_vocab), hrow = size_t(hp.n_embd);
    const size_t lo = out.logits.size(), ho = out.hidden.size();
    out.logits.resize(lo + size_t(n_out) * lrow);
    ggml_backend_tensor_get(g.out.logits, out.logits.data() + lo, 0, size_t(n_out) * lrow * sizeof(float));
    if (want_hidden) {
        out.hidden.resize(ho + size_t(n_out) * hrow);
        ggml_backend_tensor_get(g.out.hidden, out.hidden.data() + ho, 0, size_t(n_out) * hrow * sizeof(float));
    }
    out.n_out += n_out;
}

LmOutput LmSession::eval(const int32_t * tokens, const float * embeddings, int64_t n, int64_t n_out, bool want_hidden) {
    if (n <= 0) fail(ErrorKind::InvalidArgument, "eval needs at least one position");
    if (n_out < 0 || n_out > n) {
        fail(ErrorKind::InvalidArgument, strfmt("n_out must be between 0 and %lld", (long long) n));
    }
    if (n_past_ + n > n_ctx_) {
        fail(ErrorKind::InvalidArgument,
             strfmt("context is full: %lld positions used + %lld new > n_ctx %lld; create the model with a larger "
                    "n_ctx or call reset()",
                    (long long) n_past_, (long long) n, (long long) n_ctx_));
    }
    if (tokens) {
        const int64_t n_vocab = weights_->model().hparams().n_vocab;
        for (int64_t i = 0; i < n; ++i) {
            if (tokens[i] < 0 || tokens[i] >= n_vocab) {
                fail(ErrorKind::InvalidArgument, strfmt("token id %d at index %lld is outside the vocabulary [0, %lld)",
                                                        tokens[i], (long long) i, (long long) n_vocab));
            }
        }
    }
    const int64_t n_embd = weights_->model().hparams().n_embd;
    LmOutput out;
    for (int64_t done = 0; done < n;) {
        const int64_t m = std::min(kMaxBatch, n - done);
        // rows of this chunk that fall among the last n_out positions
        const int64_t first_out = n - n_out;
        const int64_t chunk_out = std::max<int64_t>(0, done + m - std::max(first_out, done));
        run_chunk(tokens ? tokens + done : nullptr, embeddings ? embeddings + done * n_embd : nullptr, m,
                  std::max<int64_t>(chunk_out, 1), want_hidden, out);
        if (chunk_out == 0) {  // a graph always yields one row; drop it when not asked for
            out.logits.resize(out.logits.size() - size_t(weights_->model().hparams().n_vocab));
            if (want_hidden) out.hidden.resize(out.hidden.size() - size_t(n_embd));
            out.n_out -= 1;
        }
        done += m;
    }
    return out;
}

std::vector<float> LmSession::embed(const int32_t * tokens, int64_t n) {
    const Qwen2HParams & hp = weights_->model().hparams();
    for (int64_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= hp.n_vocab) {
            fail(ErrorKind::InvalidArgument,
                 strfmt("token id %d is outside the vocabulary [0, %lld)", tokens[i], (long long) hp.n_vocab));
        }
    }
    ggml_init_params params{ggml_tensor_overhead() * 8 + ggml_graph_overhead(), nullptr, true};
    ggml_context * ctx = ggml_init(params);
    ggml_tensor * ids = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n);
    ggml_set_input(ids);
    ggml_tensor * rows = weights_->model().embed_tokens(ctx, ids);
    ggml_set_output(rows);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, rows);
    graph_.reset();  // the scheduler's allocation is about to change
    std::vector<float> out(size_t(n * hp.n_embd));
    try {
        sched_alloc_graph(sched_, gf, "embedding");
        ggml_backend_tensor_set(ids, tokens, 0, size_t(n) * sizeof(int32_t));
        if (ggml_backend_sched_graph_compute(sched_, gf) != GGML_STATUS_SUCCESS) {
            fail(ErrorKind::Backend, "the embedding graph failed to compute");
        }
        ggml_backend_tensor_get(rows, out.data(), 0, out.size() * sizeof(float));
    } catch (...) {
        ggml_free(ctx);
        throw;
    }
    ggml_backend_sched_reset(sched_);
    ggml_free(ctx);
    return out;
}

}  // namespace mimo
