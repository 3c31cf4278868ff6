#include "sessions/dflash_drafter.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "core/errors.h"
#include "core/graph.h"
#include "core/log.h"
#include "models/dflash_names.h"

namespace mimo {

namespace {
constexpr int64_t kInjectChunk = 512;  // context rows per inject-only graph
constexpr int64_t kKvBucket = 256;     // attended slots grow in these steps (no window)
}  // namespace

DflashWeights::DflashWeights(const std::string & path, std::shared_ptr<const TextWeights> target)
    : LoadedModel(open_gguf_of_arch(path, names::dflash::kArch, "a DFlash drafter GGUF (mimo-ggml convert dflash)"),
                  target->backend(),
                  [](const GgufFile & file, WeightStore & store) { return std::make_unique<DflashModel>(file, store); }),
      target_(std::move(target)) {
    model().check_target(target_->model(), path);
}

struct DflashDrafter::Graph : GraphArena {
    using GraphArena::GraphArena;
    int64_t n_inject = 0, n_block = 0, n_kv = 0;
    ggml_tensor * features = nullptr, * inject_pos = nullptr, * inject_slots = nullptr;
    ggml_tensor * tokens = nullptr, * positions = nullptr, * slots = nullptr, * mask = nullptr;
    ggml_tensor * logits = nullptr;
};

DflashDrafter::DflashDrafter(std::shared_ptr<const DflashWeights> weights, int64_t n_ctx, ggml_type kv_type,
                             const DflashRun & run)
    : weights_(std::move(weights)), model_(weights_->model()), run_(run), block_(model_.hparams().block_size),
      n_ctx_(n_ctx) {
    if (run_.window_keys < 0) fail(ErrorKind::InvalidArgument, "the drafter window must be >= 0 (0: none)");
    if (!(run_.rope_base_ctx > 0.0f) || !(run_.rope_base_block > 0.0f)) {
        fail(ErrorKind::InvalidArgument, "the drafter's RoPE bases must be positive");
    }
    // a block at `start` sees context back to start - (W - 1); its own B rows go in the slots after them
    const int64_t cap = run_.window_keys > 0 ? std::min(n_ctx, run_.window_keys - 1 + block_) : n_ctx;
    ring_ = KvRing(cap);
    kv_ = std::make_unique<KvCache>(*weights_->backend(), model_.kv_shapes(cap + 1), kv_type);
    sched_ = std::make_unique<Scheduler>(*weights_->backend(), model_.max_graph_nodes());
    MIMO_LOG_INFO("mimo-ggml: DFlash drafter, block %lld, window %lld, %s, KV %s %.1f MiB", (long long) block_,
                  (long long) run_.window_keys, run_.causal ? "causal" : "non-causal", ggml_type_name(kv_type),
                  kv_->bytes() / 1048576.0);
}

DflashDrafter::~DflashDrafter() {
    graph_.reset();
    sched_.reset();
}

std::vector<int32_t> DflashDrafter::capture() const {
    std::vector<int32_t> ids;
    for (int64_t id : model_.hparams().target_layers) ids.push_back(int32_t(id));
    return ids;  // the last layer's output is pre-final-norm (spec Corrections 1)
}

DflashDrafter::Graph & DflashDrafter::prepare(int64_t n_inject, int64_t n_block, int64_t n_kv) {
    if (graph_ && std::tie(graph_->n_inject, graph_->n_block, graph_->n_kv) == std::tie(n_inject, n_block, n_kv)) {
        return *graph_;
    }
    graph_.reset();
    auto g = std::make_unique<Graph>(model_.max_graph_nodes());
    g->n_inject = n_inject;
    g->n_block = n_block;
    g->n_kv = n_kv;
    ggml_context * ctx = g->ctx;
    const DflashHParams & hp = model_.hparams();
    if (n_inject > 0) {
        g->features = graph_input(ggml_new_tensor_2d(ctx, GGML_TYPE_F32, hp.n_target_features, n_inject));
        g->inject_pos = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_inject));
        g->inject_slots = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I64, n_inject));
        model_.build_inject(ctx, g->gf, g->features, g->inject_pos, g->inject_slots, *kv_, run_);
    }
    if (n_block > 0) {
        const Mimo2Model & target = weights_->target()->model();
        // [anchor, MASK x (B - 1)]: the anchor's target embedding, then the mask embedding (spec §3.2)
        ggml_tensor * mask_row = model_.mask_embd();
        g->tokens = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, mask_row ? 1 : n_block));
        ggml_tensor * h0 = ggml_get_rows(ctx, target.token_embd(), g->tokens);
        if (mask_row && n_block > 1) {
            ggml_tensor * shape = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, hp.n_embd, n_block - 1);
            h0 = ggml_concat(ctx, h0, ggml_repeat(ctx, ggml_reshape_2d(ctx, mask_row, hp.n_embd, 1), shape), 1);
        }
        g->positions = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_block));
        g->slots = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I64, n_block));
        g->mask = graph_input(ggml_new_tensor_2d(ctx, GGML_TYPE_F16, n_kv, n_block));
        g->logits = model_.build_block(ctx, g->gf, h0, g->positions, g->slots, g->mask, n_kv, *kv_, target.output(),
                                       run_);
    }
    sched_alloc_graph(sched_->get(), g->gf, "DFlash drafter");
    graph_ = std::move(g);
    return *graph_;
}

void DflashDrafter::commit(int64_t p0, const int32_t *, const float * features, int64_t n) {
    if (p0 != committed_) {
        fail(ErrorKind::Generic, strfmt("internal: drafter commit at %lld, it holds %lld positions", (long long) p0,
                                        (long long) committed_));
    }
    const int64_t width = model_.hparams().n_target_features;
    if (pending_.empty()) pending_from_ = p0;
    pending_.insert(pending_.end(), features, features + n * width);
    committed_ += n;
    // a round's graph injects up to one block of pending rows itself
    if (int64_t(pending_.size()) / width > block_) inject_pending();
}

void DflashDrafter::inject_pending() {
    const int64_t width = model_.hparams().n_target_features;
    int64_t n = int64_t(pending_.size()) / width;
    int64_t first = pending_from_;
    // only the last W - 1 positions can be seen by any later block (their K/V depend on their own row alone)
    if (run_.window_keys > 0 && n > run_.window_keys - 1) first = committed_ - (run_.window_keys - 1);
    for (int64_t p = first; p < committed_;) {
        const int64_t m = std::min(kInjectChunk, committed_ - p);
        Graph & g = prepare(m, 0, 0);
        std::vector<int32_t> pos(static_cast<size_t>(m));
        std::vector<int64_t> slots(static_cast<size_t>(m));
        for (int64_t i = 0; i < m; ++i) {
            pos[size_t(i)] = int32_t(p + i);
            slots[size_t(i)] = ring_.put(p + i);
        }
        ggml_backend_tensor_set(g.features, pending_.data() + (p - pending_from_) * width, 0,
                                size_t(m * width) * sizeof(float));
        ggml_backend_tensor_set(g.inject_pos, pos.data(), 0, pos.size() * sizeof(int32_t));
        ggml_backend_tensor_set(g.inject_slots, slots.data(), 0, slots.size() * sizeof(int64_t));
        if (ggml_backend_sched_graph_compute(sched_->get(), g.gf) != GGML_STATUS_SUCCESS) {
            reset();
            fail(ErrorKind::Backend, "the drafter's context graph failed to compute; the drafter was reset");
        }
        p += m;
    }
    pending_.clear();
}

Draft DflashDrafter::propose(int32_t anchor, int64_t start, int64_t k, const DraftChooser & choose) {
    if (start != committed_) {
        fail(ErrorKind::Generic, strfmt("internal: a draft at %lld after %lld committed positions", (long long) start,
                                        (long long) committed_));
    }
    if (k < 1 || k > block_ - 1 || start + k >= n_ctx_ + 1) {
        fail(ErrorKind::InvalidArgument, strfmt("a DFlash draft holds 1..%lld tokens inside the context, asked for %lld",
                                                (long long) (block_ - 1), (long long) k));
    }
    const DflashHParams & hp = model_.hparams();
    const int64_t width = hp.n_target_features, n_block = k + 1, trash = ring_.n_slots();
    const int64_t n_kv = run_.window_keys > 0
                             ? trash + 1
                             : std::min(trash + 1, (start + n_block + kKvBucket - 1) / kKvBucket * kKvBucket);
    Graph & g = prepare(block_, n_block, n_kv);

    // pending context rows, padded to a whole block; padding goes to the trash slot nobody attends
    const int64_t n_pending = int64_t(pending_.size()) / width;
    std::vector<float> feats(static_cast<size_t>(block_ * width), 0.0f);
    std::copy(pending_.begin(), pending_.end(), feats.begin());
    std::vector<int32_t> ipos(static_cast<size_t>(block_), 0);
    std::vector<int64_t> islots(static_cast<size_t>(block_), trash);
    for (int64_t i = 0; i < n_pending; ++i) {
        ipos[size_t(i)] = int32_t(pending_from_ + i);
        islots[size_t(i)] = ring_.put(pending_from_ + i);
    }
    // the block's own rows: temporary entries, forgotten after this graph
    std::vector<int32_t> pos(static_cast<size_t>(n_block));
    std::vector<int64_t> slots(static_cast<size_t>(n_block));
    for (int64_t i = 0; i < n_block; ++i) {
        pos[size_t(i)] = int32_t(start + i);
        slots[size_t(i)] = ring_.put(start + i);
    }
    mask_.assign(size_t(n_kv * n_block), 0);
    for (int64_t i = 0; i < n_block; ++i) {
        const int64_t P = start + i;
        ring_.mask_row(mask_.data() + i * n_kv, n_kv, P, run_.causal ? P : start + k, run_.window_keys);
    }
    std::vector<int32_t> ids(static_cast<size_t>(model_.mask_embd() ? 1 : n_block), int32_t(hp.mask_token_id));
    ids[0] = anchor;
    ggml_backend_tensor_set(g.features, feats.data(), 0, feats.size() * sizeof(float));
    ggml_backend_tensor_set(g.inject_pos, ipos.data(), 0, ipos.size() * sizeof(int32_t));
    ggml_backend_tensor_set(g.inject_slots, islots.data(), 0, islots.size() * sizeof(int64_t));
    ggml_backend_tensor_set(g.tokens, ids.data(), 0, ids.size() * sizeof(int32_t));
    ggml_backend_tensor_set(g.positions, pos.data(), 0, pos.size() * sizeof(int32_t));
    ggml_backend_tensor_set(g.slots, slots.data(), 0, slots.size() * sizeof(int64_t));
    ggml_backend_tensor_set(g.mask, mask_.data(), 0, mask_.size() * sizeof(uint16_t));
    const bool ok = ggml_backend_sched_graph_compute(sched_->get(), g.gf) == GGML_STATUS_SUCCESS;
    ring_.forget_from(start);
    pending_.clear();
    if (!ok) {
        reset();
        fail(ErrorKind::Backend, "the drafter's block graph failed to compute; the drafter was reset");
    }
    const int64_t n_vocab = g.logits->ne[0];
    Draft d;
    d.logits.resize(size_t(k * n_vocab));
    ggml_backend_tensor_get(g.logits, d.logits.data(), 0, d.logits.size() * sizeof(float));
    for (int64_t i = 0; i < k; ++i) d.tokens.push_back(choose(d.logits.data() + i * n_vocab));
    return d;
}

bool DflashDrafter::can_truncate(int64_t n) const {
    if (n < 0 || n > committed_) return false;
    if (n == 0 || run_.window_keys <= 0) return true;
    // positions n - (W - 1) .. n - 1 must be held or still pending
    const int64_t held_to = pending_.empty() ? committed_ : pending_from_;
    return ring_.holds_range(n - (run_.window_keys - 1), std::min(n, held_to));
}

void DflashDrafter::truncate(int64_t n) {
    if (!can_truncate(n)) {
        fail(ErrorKind::InvalidArgument, strfmt("the drafter cannot go back to %lld positions; reset it",
                                                (long long) n));
    }
    const int64_t width = model_.hparams().n_target_features;
    if (!pending_.empty()) {
        const int64_t keep = std::max<int64_t>(0, n - pending_from_);
        pending_.resize(size_t(std::min<int64_t>(keep * width, int64_t(pending_.size()))));
    }
    ring_.forget_from(n);
    committed_ = n;
}

void DflashDrafter::reset() {
    ring_.clear();
    pending_.clear();
    committed_ = 0;
}

}  // namespace mimo
