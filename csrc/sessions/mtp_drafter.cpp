#include "sessions/mtp_drafter.h"

#include <algorithm>
#include <tuple>

#include "core/errors.h"
#include "core/graph.h"
#include "core/log.h"

namespace mimo {

struct MtpDrafter::Graph : GraphArena {
    using GraphArena::GraphArena;
    int j = -1;
    int64_t m = 0;
    DecoderInputs in;
    ggml_tensor * logits = nullptr;
};

MtpDrafter::MtpDrafter(std::shared_ptr<const TextWeights> weights, int64_t window_keys, ggml_type kv_type,
                       const MtpRun & run)
    : weights_(std::move(weights)), model_(weights_->model()), run_(run), window_keys_(window_keys) {
    const int64_t have = model_.n_mtp();
    if (have == 0) {
        fail(ErrorKind::UnsupportedModel,
             "this model file has no MTP blocks (mimo2.nextn_predict_layers and blk.N.nextn.* tensors); convert the "
             "checkpoint again with mimo-ggml convert mimo2 (it exports them), or use a DFlash drafter");
    }
    if (run.n_used < 0 || run.n_used > have) {
        fail(ErrorKind::InvalidArgument, strfmt("the model has %lld MTP blocks; %lld asked for", (long long) have,
                                                (long long) run.n_used));
    }
    n_used_ = run.n_used > 0 ? run.n_used : have;
    if (window_keys_ < 1) fail(ErrorKind::InvalidArgument, "the MTP window must be positive");
    // one call writes at most W + K rows; the last row's window lies inside them or before
    const int64_t cap = window_keys_ + n_used_ + 1;
    for (int64_t j = 0; j < n_used_; ++j) rings_.emplace_back(cap);
    std::vector<KvLayerShape> shapes = model_.mtp_kv_shapes(cap);
    shapes.resize(size_t(n_used_));
    kv_ = std::make_unique<KvCache>(*weights_->backend(), shapes, kv_type);
    sched_ = std::make_unique<Scheduler>(*weights_->backend(), 256);
    exact_.assign(size_t(n_used_), 0);
    MIMO_LOG_INFO("mimo-ggml: MTP drafter, %lld of %lld blocks, window %lld, KV %s %.1f MiB", (long long) n_used_,
                  (long long) have, (long long) window_keys_, ggml_type_name(kv_type), kv_->bytes() / 1048576.0);
}

MtpDrafter::~MtpDrafter() {
    graph_.reset();
    sched_.reset();
}

std::vector<int32_t> MtpDrafter::capture() const {
    return {run_.pre_norm_hidden ? int32_t(model_.n_layer() - 1) : kCaptureFinalNorm};
}

MtpDrafter::Graph & MtpDrafter::prepare(int j, int64_t m) {
    if (graph_ && graph_->j == j && graph_->m == m) return *graph_;
    graph_.reset();
    auto g = std::make_unique<Graph>(256);
    g->j = j;
    g->m = m;
    ggml_context * ctx = g->ctx;
    DecoderInputs & in = g->in;
    in.tokens = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, m));
    in.embeddings = graph_input(ggml_new_tensor_2d(ctx, GGML_TYPE_F32, model_.n_embd(), m));
    in.positions = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, m));
    in.slots_swa = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I64, m));
    in.n_kv_swa = rings_[size_t(j)].n_slots();
    in.mask_swa = graph_input(ggml_new_tensor_2d(ctx, GGML_TYPE_F16, in.n_kv_swa, m));
    g->logits = model_.build_mtp(ctx, g->gf, j, in, *kv_);
    sched_alloc_graph(sched_->get(), g->gf, "MTP drafter");
    graph_ = std::move(g);
    return *graph_;
}

void MtpDrafter::commit(int64_t p0, const int32_t * tokens, const float * features, int64_t n) {
    if (p0 != n_committed()) {
        fail(ErrorKind::Generic, strfmt("internal: MTP commit at %lld, it holds %lld positions", (long long) p0,
                                        (long long) n_committed()));
    }
    const int64_t H = model_.n_embd();
    tokens_.insert(tokens_.end(), tokens, tokens + n);
    if (hidden_.empty()) hidden_from_ = p0;
    hidden_.insert(hidden_.end(), features, features + n * H);
    // keep what a round (rows back to s - W - K) or a truncation by up to W positions may read
    const int64_t keep_from = std::max<int64_t>(0, n_committed() - 2 * (window_keys_ + n_used_));
    if (keep_from > hidden_from_) {
        hidden_.erase(hidden_.begin(), hidden_.begin() + (keep_from - hidden_from_) * H);
        hidden_from_ = keep_from;
    }
}

const float * MtpDrafter::hidden_row(int64_t i) const {
    return &hidden_[size_t((i - hidden_from_) * model_.n_embd())];
}

Draft MtpDrafter::propose(int32_t anchor, int64_t s, int64_t k, const DraftChooser & choose) {
    if (s != n_committed() || s < 1) {
        fail(ErrorKind::Generic, strfmt("internal: an MTP draft at %lld after %lld committed positions", (long long) s,
                                        (long long) n_committed()));
    }
    if (k < 1 || k > n_used_) {
        fail(ErrorKind::InvalidArgument,
             strfmt("an MTP draft holds 1..%lld tokens, asked for %lld", (long long) n_used_, (long long) k));
    }
    const int64_t H = model_.n_embd(), n_vocab = model_.n_vocab();
    Draft d;
    auto token_at = [&](int64_t p) -> int32_t {  // committed, the anchor, or a draft of this round
        if (p < s) return tokens_[size_t(p)];
        if (p == s) return anchor;
        return d.tokens[size_t(p - s - 1)];
    };
    for (int j = 0; j < int(k); ++j) {
        KvRing & ring = rings_[size_t(j)];
        // rows older than s - W - j are never seen again (each row's K/V depends on its own input alone)
        const int64_t lo = std::max({exact_[size_t(j)], s - window_keys_ - j, int64_t(0)});
        const int64_t m = s - lo;
        Graph & g = prepare(j, m);
        std::vector<int32_t> ids(static_cast<size_t>(m)), pos(static_cast<size_t>(m));
        std::vector<int64_t> slots(static_cast<size_t>(m));
        std::vector<float> hid(static_cast<size_t>(m * H));
        ring.forget_from(lo);
        for (int64_t r = 0; r < m; ++r) {
            const int64_t i = lo + r;
            ids[size_t(r)] = token_at(i + j + 1);
            pos[size_t(r)] = int32_t(i);
            slots[size_t(r)] = ring.put(i);
            std::copy_n(hidden_row(i), H, hid.begin() + r * H);
        }
        const int64_t n_kv = ring.n_slots();
        mask_.assign(size_t(n_kv * m), 0);
        for (int64_t r = 0; r < m; ++r) ring.mask_row(mask_.data() + r * n_kv, n_kv, lo + r, lo + r, window_keys_);
        ggml_backend_tensor_set(g.in.tokens, ids.data(), 0, ids.size() * sizeof(int32_t));
        ggml_backend_tensor_set(g.in.embeddings, hid.data(), 0, hid.size() * sizeof(float));
        ggml_backend_tensor_set(g.in.positions, pos.data(), 0, pos.size() * sizeof(int32_t));
        ggml_backend_tensor_set(g.in.slots_swa, slots.data(), 0, slots.size() * sizeof(int64_t));
        ggml_backend_tensor_set(g.in.mask_swa, mask_.data(), 0, mask_.size() * sizeof(uint16_t));
        if (ggml_backend_sched_graph_compute(sched_->get(), g.gf) != GGML_STATUS_SUCCESS) {
            reset();
            fail(ErrorKind::Backend, "the MTP graph failed to compute; the drafter was reset");
        }
        const size_t at = d.logits.size();
        d.logits.resize(at + size_t(n_vocab));
        ggml_backend_tensor_get(g.logits, d.logits.data() + at, 0, size_t(n_vocab) * sizeof(float));
        d.tokens.push_back(choose(d.logits.data() + at));
        // rows i >= s - j read a token of this round's draft: recomputed next round
        exact_[size_t(j)] = s - j;
        ring.forget_from(s - j);
    }
    return d;
}

bool MtpDrafter::can_truncate(int64_t n) const {
    if (n < 0 || n > n_committed()) return false;
    // after a truncation every row inside the window is recomputed from the kept hidden rows
    return hidden_from_ <= std::max<int64_t>(0, n - window_keys_ - n_used_);
}

void MtpDrafter::truncate(int64_t n) {
    if (!can_truncate(n)) {
        fail(ErrorKind::InvalidArgument, strfmt("the MTP drafter cannot go back to %lld positions; reset it",
                                                (long long) n));
    }
    tokens_.resize(size_t(n));
    const int64_t H = model_.n_embd();
    const int64_t rows = int64_t(hidden_.size()) / H;
    if (hidden_from_ + rows > n) hidden_.resize(size_t(std::max<int64_t>(0, n - hidden_from_) * H));
    for (int64_t j = 0; j < n_used_; ++j) {
        int64_t & x = exact_[size_t(j)];
        x = std::min(x, std::max<int64_t>(0, n - window_keys_ - j - 1));
        rings_[size_t(j)].forget_from(x);
    }
}

void MtpDrafter::reset() {
    tokens_.clear();
    hidden_.clear();
    hidden_from_ = 0;
    std::fill(exact_.begin(), exact_.end(), 0);
    for (KvRing & r : rings_) r.clear();
}

}  // namespace mimo
