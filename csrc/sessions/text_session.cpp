#include "sessions/text_session.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/graph.h"
#include "core/log.h"
#include "models/mimo2_names.h"

namespace mimo {

TextWeights::TextWeights(const std::string & path, std::shared_ptr<Backend> backend)
    : LoadedModel(open_gguf_of_arch(path, names::mimo2::kArch, "a MiMo-V2 / V2.5 MoE text GGUF",
                                    {{"mimo_asr", "this is a MiMo-ASR file: use mimo_ggml.Session for speech "
                                                  "recognition"},
                                     {"mimo_tokenizer", "this is the audio-tokenizer file"}}),
                  std::move(backend), [](const GgufFile & file, WeightStore & store) {
                      return std::make_unique<Mimo2Model>(file, store);
                  }) {}

struct TextSession::Graph : GraphArena {
    using GraphArena::GraphArena;
    Mimo2GraphInputs in;
    Mimo2GraphOutputs out;
    int64_t n = 0, n_kv_full = 0, n_kv_swa = 0, n_out = 0;
};

TextSession::TextSession(std::shared_ptr<const TextWeights> weights, int64_t n_ctx, ggml_type kv_type,
                         int64_t window_keys, int64_t max_batch)
    : weights_(std::move(weights)), n_ctx_(n_ctx), max_batch_(max_batch) {
    const Mimo2Model & model = weights_->model();
    const Mimo2HParams & hp = model.hparams();
    if (n_ctx <= 0) fail(ErrorKind::InvalidArgument, strfmt("n_ctx must be positive, got %lld", (long long) n_ctx));
    if (window_keys < 0) {
        fail(ErrorKind::InvalidArgument,
             strfmt("swa_window_keys must be positive (or None for the file's value), got %lld", (long long) window_keys));
    }
    if (max_batch <= 0) fail(ErrorKind::InvalidArgument, strfmt("n_batch must be positive, got %lld", (long long) max_batch));
    window_keys_ = window_keys > 0 ? window_keys : hp.window_keys;
    has_full_ = hp.any_full();
    has_swa_ = hp.any_swa();
    // a chunk of m <= max_batch new positions needs the W - 1 before it plus itself
    swa_slots_ = std::min(n_ctx, window_keys_ - 1 + max_batch_);
    swa_pos_.assign(size_t(swa_slots_), -1);
    kv_ = std::make_unique<KvCache>(weights_->backend(), model.kv_shapes(n_ctx, swa_slots_), kv_type);
    sched_ = weights_->backend()->new_scheduler(model.max_graph_nodes());
    MIMO_LOG_INFO("mimo-ggml: text session n_ctx %lld, SWA window %lld keys (ring %lld slots), KV %s %.1f MiB "
                  "(%zu bytes per position + %.1f MiB of SWA rings)",
                  (long long) n_ctx, (long long) window_keys_, (long long) swa_slots_, ggml_type_name(kv_type),
                  kv_->bytes() / 1048576.0, kv_bytes_per_token(), kv_bytes_swa() / 1048576.0);
}

TextSession::~TextSession() {
    graph_.reset();
    if (sched_) ggml_backend_sched_free(sched_);
}

size_t TextSession::kv_bytes_per_token() const {
    size_t n = 0;
    const auto & swa = weights_->model().hparams().swa;
    for (size_t il = 0; il < swa.size(); ++il)
        if (!swa[il]) n += kv_->k(il)->nb[1] + kv_->v(il)->nb[1];
    return n;
}

size_t TextSession::kv_bytes_swa() const {
    size_t n = 0;
    const auto & swa = weights_->model().hparams().swa;
    for (size_t il = 0; il < swa.size(); ++il)
        if (swa[il]) n += ggml_nbytes(kv_->k(il)) + ggml_nbytes(kv_->v(il));
    return n;
}

void TextSession::reset() {
    n_past_ = 0;
    std::fill(swa_pos_.begin(), swa_pos_.end(), -1);
}

bool TextSession::can_truncate(int64_t n) const {
    if (n < 0 || n > n_past_) return false;
    if (!has_swa_ || n == 0) return true;
    // positions n - (W - 1) .. n - 1 must still be in the ring: later queries need them
    for (int64_t p = std::max<int64_t>(0, n - (window_keys_ - 1)); p < n; ++p) {
        if (swa_pos_[size_t(p % swa_slots_)] != p) return false;
    }
    return true;
}

void TextSession::truncate(int64_t n) {
    if (n < 0 || n > n_past_) {
        fail(ErrorKind::InvalidArgument,
             strfmt("truncate(%lld): must be between 0 and the current length %lld", (long long) n, (long long) n_past_));
    }
    if (!can_truncate(n)) {
        fail(ErrorKind::InvalidArgument,
             strfmt("truncate(%lld): the sliding-window layers no longer hold positions %lld..%lld (their ring keeps "
                    "the last %lld positions); call reset() and evaluate again",
                    (long long) n, (long long) std::max<int64_t>(0, n - (window_keys_ - 1)), (long long) (n - 1),
                    (long long) swa_slots_));
    }
    for (int64_t & p : swa_pos_)
        if (p >= n) p = -1;
    n_past_ = n;
}

TextSession::Graph & TextSession::prepare(int64_t n, int64_t n_kv_full, int64_t n_kv_swa, int64_t n_out) {
    if (graph_ && graph_->n == n && graph_->n_kv_full == n_kv_full && graph_->n_kv_swa == n_kv_swa &&
        graph_->n_out == n_out) {
        return *graph_;  // same shapes: reuse the allocated graph, only inputs change
    }
    graph_.reset();
    const size_t max_nodes = weights_->model().max_graph_nodes();
    auto g = std::make_unique<Graph>(max_nodes);
    g->n = n;
    g->n_kv_full = n_kv_full;
    g->n_kv_swa = n_kv_swa;
    g->n_out = n_out;
    Mimo2GraphInputs & in = g->in;
    in.tokens = ggml_new_tensor_1d(g->ctx, GGML_TYPE_I32, n);
    in.positions = ggml_new_tensor_1d(g->ctx, GGML_TYPE_I32, n);
    ggml_set_input(in.tokens);
    ggml_set_input(in.positions);
    if (has_full_) {
        in.slots_full = ggml_new_tensor_1d(g->ctx, GGML_TYPE_I64, n);
        in.mask_full = ggml_new_tensor_2d(g->ctx, GGML_TYPE_F16, n_kv_full, n);
        ggml_set_input(in.slots_full);
        ggml_set_input(in.mask_full);
    }
    if (has_swa_) {
        in.slots_swa = ggml_new_tensor_1d(g->ctx, GGML_TYPE_I64, n);
        in.mask_swa = ggml_new_tensor_2d(g->ctx, GGML_TYPE_F16, n_kv_swa, n);
        ggml_set_input(in.slots_swa);
        ggml_set_input(in.mask_swa);
    }
    in.n_kv_full = n_kv_full;
    in.n_kv_swa = n_kv_swa;
    in.n_out = n_out;
    g->out = weights_->model().build(g->ctx, g->gf, in, *kv_);
    sched_alloc_graph(sched_, g->gf, "text-model");
    graph_ = std::move(g);
    return *graph_;
}

void TextSession::run_chunk(const int32_t * tokens, int64_t n, int64_t n_out, std::vector<float> & logits) {
    const int64_t p0 = n_past_, end = p0 + n;
    const int64_t n_kv_full = std::min(n_ctx_, (end + kKvBucket - 1) / kKvBucket * kKvBucket);
    const int64_t swa_used = std::min(end, swa_slots_);
    const int64_t n_kv_swa = std::min(swa_slots_, (swa_used + kKvBucket - 1) / kKvBucket * kKvBucket);
    Graph & g = prepare(n, n_kv_full, n_kv_swa, n_out);

    std::vector<int32_t> pos(static_cast<size_t>(n));
    std::vector<int64_t> slots(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pos[size_t(i)] = int32_t(p0 + i);
    ggml_backend_tensor_set(g.in.tokens, tokens, 0, size_t(n) * sizeof(int32_t));
    ggml_backend_tensor_set(g.in.positions, pos.data(), 0, pos.size() * sizeof(int32_t));

    const uint16_t zero = ggml_fp32_to_fp16(0.0f), minus_inf = ggml_fp32_to_fp16(-INFINITY);
    if (has_full_) {
        // slot = position; query at p0 + i sees slots 0 .. p0 + i
        for (int64_t i = 0; i < n; ++i) slots[size_t(i)] = p0 + i;
        ggml_backend_tensor_set(g.in.slots_full, slots.data(), 0, slots.size() * sizeof(int64_t));
        mask_.assign(size_t(n_kv_full * n), minus_inf);
        for (int64_t i = 0; i < n; ++i) std::fill_n(mask_.begin() + i * n_kv_full, p0 + i + 1, zero);
        ggml_backend_tensor_set(g.in.mask_full, mask_.data(), 0, mask_.size() * sizeof(uint16_t));
    }
    if (has_swa_) {
        // ring: slot = position mod size; a query at P sees the slots holding P - (W - 1) .. P
        for (int64_t i = 0; i < n; ++i) {
            const int64_t s = (p0 + i) % swa_slots_;
            slots[size_t(i)] = s;
            swa_pos_[size_t(s)] = p0 + i;
        }
        ggml_backend_tensor_set(g.in.slots_swa, slots.data(), 0, slots.size() * sizeof(int64_t));
        mask_.assign(size_t(n_kv_swa * n), minus_inf);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t P = p0 + i;
            uint16_t * row = mask_.data() + i * n_kv_swa;
            for (int64_t s = 0; s < n_kv_swa; ++s) {
                const int64_t kp = swa_pos_[size_t(s)];
                if (kp >= 0 && kp <= P && P - kp < window_keys_) row[s] = zero;
            }
        }
        ggml_backend_tensor_set(g.in.mask_swa, mask_.data(), 0, mask_.size() * sizeof(uint16_t));
    }

    if (ggml_backend_sched_graph_compute(sched_, g.gf) != GGML_STATUS_SUCCESS) {
        // the ring bookkeeping above may describe positions that were not written
        reset();
        fail(ErrorKind::Backend, "the text-model graph failed to compute; the context was reset");
    }
    n_past_ = end;

    const size_t row = size_t(weights_->model().hparams().n_vocab);
    const size_t off = logits.size();
    logits.resize(off + size_t(n_out) * row);
    ggml_backend_tensor_get(g.out.logits, logits.data() + off, 0, size_t(n_out) * row * sizeof(float));
}

std::vector<float> TextSession::eval(const int32_t * tokens, int64_t n, int64_t n_out) {
    const Mimo2HParams & hp = weights_->model().hparams();
    if (n <= 0) fail(ErrorKind::InvalidArgument, "eval needs at least one token");
    if (n_out < 0 || n_out > n) fail(ErrorKind::InvalidArgument, strfmt("n_out must be between 0 and %lld", (long long) n));
    if (n_past_ + n > n_ctx_) {
        fail(ErrorKind::InvalidArgument,
             strfmt("context is full: %lld positions used + %lld new > n_ctx %lld; create the session with a larger "
                    "n_ctx or call reset()",
                    (long long) n_past_, (long long) n, (long long) n_ctx_));
    }
    for (int64_t i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= hp.n_vocab) {
            fail(ErrorKind::InvalidArgument, strfmt("token id %d at index %lld is outside the vocabulary [0, %lld)",
                                                    tokens[i], (long long) i, (long long) hp.n_vocab));
        }
    }
    std::vector<float> logits;
    logits.reserve(size_t(std::max<int64_t>(n_out, 1) * hp.n_vocab));
    const int64_t first_out = n - n_out;
    for (int64_t done = 0; done < n;) {
        const int64_t m = std::min(max_batch_, n - done);
        // rows of this chunk among the last n_out positions; a graph always yields at least one
        const int64_t chunk_out = std::max<int64_t>(0, done + m - std::max(first_out, done));
        run_chunk(tokens + done, m, std::max<int64_t>(chunk_out, 1), logits);
        if (chunk_out == 0) logits.resize(logits.size() - size_t(hp.n_vocab));
        done += m;
    }
    return logits;
}

}  // namespace mimo
