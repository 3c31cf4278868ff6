#include "sessions/decode_session.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "core/errors.h"
#include "core/graph.h"
#include "core/log.h"

namespace mimo {

// What decides whether a kept graph can be reused.
struct DecodeSession::Shape {
    int64_t n = 0, n_kv_full = 0, n_kv_swa = 0, n_out = 0;
    bool tokens = false;
    int64_t n_emb = 0;
    bool want_hidden = false, want_inputs = false;
    std::vector<int32_t> capture;
    auto key() const {
        return std::tie(n, n_kv_full, n_kv_swa, n_out, tokens, n_emb, want_hidden, want_inputs, capture);
    }
};

struct DecodeSession::Graph : GraphArena {
    using GraphArena::GraphArena;
    Shape shape;
    DecoderInputs in;
    DecoderOutputs out;
};

DecodeSession::DecodeSession(std::shared_ptr<const void> keep_alive, const DecoderModel & model,
                             const Backend & backend, int64_t n_ctx, ggml_type kv_type,
                             std::optional<int64_t> window_keys, int64_t max_batch, int64_t n_seq)
    : keep_alive_(std::move(keep_alive)), model_(model), n_ctx_(n_ctx), n_seq_(n_seq), max_batch_(max_batch) {
    if (n_ctx <= 0) fail(ErrorKind::InvalidArgument, strfmt("n_ctx must be positive, got %lld", (long long) n_ctx));
    if (window_keys && *window_keys < 1) {
        fail(ErrorKind::InvalidArgument,
             strfmt("swa_window_keys must be positive (or None for the file's value), got %lld", (long long) *window_keys));
    }
    if (max_batch <= 0) fail(ErrorKind::InvalidArgument, strfmt("n_batch must be positive, got %lld", (long long) max_batch));
    has_full_ = model.has_full_layers();
    has_swa_ = model.has_swa_layers();
    if (n_seq < 1 || n_seq > 256 || (has_swa_ && n_seq != 1)) {
        fail(ErrorKind::InvalidArgument,
             strfmt("a session holds 1 to 256 sequences (1 for models with sliding-window layers), got %lld",
                    (long long) n_seq));
    }
    n_past_.assign(size_t(n_seq), 0);
    window_keys_ = window_keys ? *window_keys : model.default_window_keys();
    if (has_swa_) {
        // a chunk of m <= max_batch new positions needs the W - 1 before it plus itself
        swa_slots_ = std::min(n_ctx, window_keys_ - 1 + max_batch_);
        swa_ring_ = KvRing(swa_slots_);
    }
    kv_ = std::make_unique<KvCache>(backend, model.kv_shapes(n_ctx * n_seq, swa_slots_), kv_type);
    sched_ = std::make_unique<Scheduler>(backend, model.max_graph_nodes());
    MIMO_LOG_INFO("mimo-ggml: decode session %lld x n_ctx %lld, KV %s %.1f MiB (%zu bytes per position%s)",
                  (long long) n_seq, (long long) n_ctx, ggml_type_name(kv_type), kv_->bytes() / 1048576.0,
                  kv_bytes_per_token(),
                  has_swa_ ? strfmt(", SWA window %lld keys in rings of %lld slots", (long long) window_keys_,
                                    (long long) swa_slots_).c_str()
                           : "");
}

DecodeSession::~DecodeSession() {
    graph_.reset();  // before the scheduler that allocated it
    sched_.reset();
}

size_t DecodeSession::kv_bytes_per_token() const {
    size_t n = 0;
    for (size_t il = 0; il < kv_->n_layers(); ++il)
        if (!model_.is_swa_layer(il)) n += kv_->k(il)->nb[1] + kv_->v(il)->nb[1];
    return n;
}

size_t DecodeSession::kv_bytes_swa() const {
    size_t n = 0;
    for (size_t il = 0; il < kv_->n_layers(); ++il)
        if (model_.is_swa_layer(il)) n += ggml_nbytes(kv_->k(il)) + ggml_nbytes(kv_->v(il));
    return n;
}

void DecodeSession::set_capture(std::vector<int32_t> layers) {
    for (int32_t l : layers) {
        if (l != kCaptureFinalNorm && (l < 0 || l >= model_.n_layer())) {
            fail(ErrorKind::InvalidArgument, strfmt("cannot capture layer %d: the model has layers 0..%lld", l,
                                                    (long long) model_.n_layer() - 1));
        }
    }
    capture_ = std::move(layers);
    graph_.reset();
}

void DecodeSession::reset() {
    std::fill(n_past_.begin(), n_past_.end(), 0);
    swa_ring_.clear();
}

void DecodeSession::reset_seq(int64_t seq) {
    if (seq < 0 || seq >= n_seq_) fail(ErrorKind::InvalidArgument, strfmt("no sequence %lld", (long long) seq));
    n_past_[size_t(seq)] = 0;
    if (has_swa_) swa_ring_.clear();  // one sequence only
}

bool DecodeSession::can_truncate(int64_t n) const {
    if (n < 0 || n > n_past_[0]) return false;
    if (!has_swa_ || n == 0) return true;
    // positions n - (W - 1) .. n - 1 must still be in the ring: later queries need them
    return swa_ring_.holds_range(n - (window_keys_ - 1), n);
}

void DecodeSession::truncate(int64_t n) {
    if (n < 0 || n > n_past_[0]) {
        fail(ErrorKind::InvalidArgument, strfmt("truncate(%lld): must be between 0 and the current length %lld",
                                                (long long) n, (long long) n_past_[0]));
    }
    if (!can_truncate(n)) {
        fail(ErrorKind::InvalidArgument,
             strfmt("truncate(%lld): the sliding-window layers no longer hold positions %lld..%lld (their ring keeps "
                    "the last %lld positions); call reset() and evaluate again",
                    (long long) n, (long long) std::max<int64_t>(0, n - (window_keys_ - 1)), (long long) (n - 1),
                    (long long) swa_slots_));
    }
    swa_ring_.forget_from(n);
    n_past_[0] = n;
}

DecodeSession::Graph & DecodeSession::prepare(const Shape & shape) {
    if (graph_ && graph_->shape.key() == shape.key()) return *graph_;  // same shapes: only inputs change
    graph_.reset();
    auto g = std::make_unique<Graph>(model_.max_graph_nodes());
    g->shape = shape;
    DecoderInputs & in = g->in;
    ggml_context * ctx = g->ctx;
    if (shape.tokens) in.tokens = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, shape.n));
    if (shape.n_emb > 0) {
        in.embeddings = graph_input(ggml_new_tensor_2d(ctx, GGML_TYPE_F32, model_.n_embd(), shape.n_emb));
        if (shape.tokens) in.row_source = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, shape.n));
    }
    in.positions = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, shape.n));
    if (has_full_) {
        in.slots_full = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I64, shape.n));
        in.mask_full = graph_input(ggml_new_tensor_2d(ctx, GGML_TYPE_F16, shape.n_kv_full, shape.n));
    }
    if (has_swa_) {
        in.slots_swa = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I64, shape.n));
        in.mask_swa = graph_input(ggml_new_tensor_2d(ctx, GGML_TYPE_F16, shape.n_kv_swa, shape.n));
    }
    in.n_kv_full = shape.n_kv_full;
    in.n_kv_swa = shape.n_kv_swa;
    in.n_out = shape.n_out;
    // captured rows need the last layer over every row (see DecoderInputs::capture)
    if (shape.n_out < shape.n && shape.capture.empty()) {
        in.out_rows = graph_input(ggml_new_tensor_1d(ctx, GGML_TYPE_I32, shape.n_out));
    }
    in.want_hidden = shape.want_hidden;
    in.want_inputs = shape.want_inputs;
    in.capture = shape.capture;
    g->out = model_.build(ctx, g->gf, in, *kv_);
    sched_alloc_graph(sched_->get(), g->gf, "decoder");
    graph_ = std::move(g);
    return *graph_;
}

void DecodeSession::run_graph(const std::vector<Row> & rows, int64_t n_out, bool want_hidden, bool want_inputs,
                              DecodeOutput & out) {
    const int64_t n = int64_t(rows.size()), n_embd = model_.n_embd();
    auto bucket = [](int64_t used, int64_t cap) { return std::min(cap, (used + kKvBucket - 1) / kKvBucket * kKvBucket); };
    int64_t used_full = 0, n_emb = 0;
    bool any_token = false;
    for (const Row & r : rows) {
        used_full = std::max(used_full, r.seq * n_ctx_ + r.pos + 1);
        n_emb += r.embedding != nullptr;
        any_token = any_token || r.embedding == nullptr;
    }
    Shape shape;
    shape.n = n;
    shape.n_out = n_out;
    shape.n_kv_full = has_full_ ? bucket(used_full, n_ctx_ * n_seq_) : 0;
    int64_t end = 0;
    for (const Row & r : rows) end = std::max(end, r.pos + 1);
    shape.n_kv_swa = has_swa_ ? bucket(std::min(end, swa_slots_), swa_slots_) : 0;
    shape.tokens = any_token;  // all-embedding graphs take the rows as they are, in order
    shape.n_emb = n_emb;
    shape.want_hidden = want_hidden;
    shape.want_inputs = want_inputs;
    shape.capture = capture_;
    Graph & g = prepare(shape);

    std::vector<int32_t> ids(static_cast<size_t>(n)), pos(static_cast<size_t>(n)), source;
    std::vector<float> emb;
    emb.reserve(size_t(n_emb * n_embd));
    if (g.in.row_source) source.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
        const Row & r = rows[size_t(i)];
        ids[size_t(i)] = r.token;
        pos[size_t(i)] = int32_t(r.pos);
        if (r.embedding) {
            if (!source.empty()) source[size_t(i)] = int32_t(n + int64_t(emb.size()) / n_embd);
            emb.insert(emb.end(), r.embedding, r.embedding + n_embd);
        } else if (!source.empty()) {
            source[size_t(i)] = int32_t(i);
        }
    }
    if (g.in.tokens) ggml_backend_tensor_set(g.in.tokens, ids.data(), 0, ids.size() * sizeof(int32_t));
    if (g.in.embeddings) ggml_backend_tensor_set(g.in.embeddings, emb.data(), 0, emb.size() * sizeof(float));
    if (g.in.row_source) ggml_backend_tensor_set(g.in.row_source, source.data(), 0, source.size() * sizeof(int32_t));
    ggml_backend_tensor_set(g.in.positions, pos.data(), 0, pos.size() * sizeof(int32_t));
    if (g.in.out_rows) {
        std::vector<int32_t> out_rows(static_cast<size_t>(n_out));
        for (int64_t i = 0; i < n_out; ++i) out_rows[size_t(i)] = int32_t(n - n_out + i);
        ggml_backend_tensor_set(g.in.out_rows, out_rows.data(), 0, out_rows.size() * sizeof(int32_t));
    }

    std::vector<int64_t> slots(static_cast<size_t>(n));
    const uint16_t zero = ggml_fp32_to_fp16(0.0f), minus_inf = ggml_fp32_to_fp16(-INFINITY);
    if (has_full_) {
        // slot = seq * n_ctx + position; a row sees its own sequence's slots up to its position
        const int64_t n_kv = shape.n_kv_full;
        mask_.assign(size_t(n_kv * n), minus_inf);
        for (int64_t i = 0; i < n; ++i) {
            const Row & r = rows[size_t(i)];
            const int64_t base = r.seq * n_ctx_;
            slots[size_t(i)] = base + r.pos;
            std::fill_n(mask_.begin() + i * n_kv + base, r.pos + 1, zero);
        }
        ggml_backend_tensor_set(g.in.slots_full, slots.data(), 0, slots.size() * sizeof(int64_t));
        ggml_backend_tensor_set(g.in.mask_full, mask_.data(), 0, mask_.size() * sizeof(uint16_t));
    }
    if (has_swa_) {
        // ring: slot = position mod size; the query at P sees the slots holding P - (W - 1) .. P
        const int64_t n_kv = shape.n_kv_swa;
        for (int64_t i = 0; i < n; ++i) slots[size_t(i)] = swa_ring_.put(rows[size_t(i)].pos);
        ggml_backend_tensor_set(g.in.slots_swa, slots.data(), 0, slots.size() * sizeof(int64_t));
        mask_.assign(size_t(n_kv * n), minus_inf);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t P = rows[size_t(i)].pos;
            swa_ring_.mask_row(mask_.data() + i * n_kv, n_kv, P, P, window_keys_);
        }
        ggml_backend_tensor_set(g.in.mask_swa, mask_.data(), 0, mask_.size() * sizeof(uint16_t));
    }

    if (ggml_backend_sched_graph_compute(sched_->get(), g.gf) != GGML_STATUS_SUCCESS) {
        reset();  // the ring bookkeeping above may describe positions that were not written
        fail(ErrorKind::Backend, "the decoder graph failed to compute; the context was reset");
    }
    for (const Row & r : rows) n_past_[size_t(r.seq)] = std::max(n_past_[size_t(r.seq)], r.pos + 1);

    auto append = [](std::vector<float> & dst, ggml_tensor * t, int64_t n_rows) {
        const size_t row = size_t(t->ne[0]), at = dst.size();
        dst.resize(at + size_t(n_rows) * row);
        ggml_backend_tensor_get(t, dst.data() + at, 0, size_t(n_rows) * row * sizeof(float));
    };
    append(out.logits, g.out.logits, n_out);
    if (want_hidden) append(out.hidden, g.out.hidden, n_out);
    if (want_inputs) append(out.inputs, g.out.inputs, n);
    if (!capture_.empty()) append(out.captured, g.out.captured, n);
    out.n_out += n_out;
}

void DecodeSession::check_room(int64_t seq, int64_t n) const {
    if (seq < 0 || seq >= n_seq_) {
        fail(ErrorKind::InvalidArgument,
             strfmt("sequence %lld does not exist (this session holds %lld)", (long long) seq, (long long) n_seq_));
    }
    if (n <= 0) fail(ErrorKind::InvalidArgument, "eval needs at least one position");
    if (n_past_[size_t(seq)] + n > n_ctx_) {
        fail(ErrorKind::InvalidArgument,
             strfmt("context is full: %lld positions used + %lld new > n_ctx %lld; use a larger n_ctx or reset()",
                    (long long) n_past_[size_t(seq)], (long long) n, (long long) n_ctx_));
    }
}

void DecodeSession::append_rows(std::vector<Row> & dst, int64_t seq, const DecodeRows & rows, int64_t n) const {
    check_room(seq, n);
    if (!rows.tokens && !rows.embeddings) fail(ErrorKind::InvalidArgument, "eval needs token ids or embeddings");
    if (rows.embeddings) {
        const bool whole = !rows.tokens && (rows.emb_begin != 0 || rows.n_emb != n);
        if (rows.n_emb < 0 || rows.emb_begin < 0 || rows.emb_begin + rows.n_emb > n || whole) {
            fail(ErrorKind::InvalidArgument, "embedding rows must lie inside the evaluated rows");
        }
    }
    const int64_t n_vocab = model_.n_vocab(), n_embd = model_.n_embd(), p0 = n_past_[size_t(seq)];
    for (int64_t i = 0; i < n; ++i) {
        Row r;
        r.seq = seq;
        r.pos = p0 + i;
        if (rows.embeddings && i >= rows.emb_begin && i < rows.emb_begin + rows.n_emb) {
            r.embedding = rows.embeddings + (i - rows.emb_begin) * n_embd;
        } else {
            r.token = rows.tokens[i];
            if (r.token < 0 || r.token >= n_vocab) {
                fail(ErrorKind::InvalidArgument, strfmt("token id %d at index %lld is outside the vocabulary [0, %lld)",
                                                        r.token, (long long) i, (long long) n_vocab));
            }
        }
        dst.push_back(r);
    }
}

DecodeOutput DecodeSession::eval(const DecodeRows & rows, int64_t n, int64_t n_out, bool want_hidden,
                                 bool want_inputs) {
    std::vector<Row> all;
    append_rows(all, 0, rows, n);
    if (n_out < 0 || n_out > n) fail(ErrorKind::InvalidArgument, strfmt("n_out must be between 0 and %lld", (long long) n));
    const int64_t n_vocab = model_.n_vocab(), first_out = n - n_out;
    DecodeOutput out;
    out.logits.reserve(size_t(std::max<int64_t>(n_out, 1) * n_vocab));
    for (int64_t done = 0; done < n;) {
        const int64_t m = std::min(max_batch_, n - done);
        std::vector<Row> chunk(all.begin() + done, all.begin() + done + m);
        // rows of this chunk among the last n_out positions; a graph always yields at least one
        const int64_t chunk_out = std::max<int64_t>(0, done + m - std::max(first_out, done));
        const size_t lo = out.logits.size(), ho = out.hidden.size();
        run_graph(chunk, std::max<int64_t>(chunk_out, 1), want_hidden, want_inputs, out);
        if (chunk_out == 0) {  // drop the row nobody asked for
            out.logits.resize(lo);
            out.hidden.resize(ho);
            out.n_out -= 1;
        }
        done += m;
    }
    return out;
}

std::vector<float> DecodeSession::eval_tokens(const int32_t * tokens, int64_t n) {
    DecodeRows rows;
    rows.tokens = tokens;
    return eval(rows, n, 1).logits;
}

std::vector<std::vector<float>> DecodeSession::eval_batch(const std::vector<SeqRows> & parts) {
    // Rows sequence by sequence, cut into graphs of max_batch rows. Within a graph the rows that end a
    // part go last, so the graph's last n_out rows are exactly the outputs (rows may be in any order).
    std::vector<Row> all;
    std::vector<int64_t> ends;  // index in `all` one past each part
    std::vector<bool> seen(size_t(n_seq_), false);
    for (const SeqRows & p : parts) {
        if (p.seq >= 0 && p.seq < n_seq_ && seen[size_t(p.seq)]) {
            fail(ErrorKind::InvalidArgument, "eval_batch: a sequence may appear only once");
        }
        append_rows(all, p.seq, p.rows, p.n);
        seen[size_t(p.seq)] = true;
        ends.push_back(int64_t(all.size()));
    }
    const int64_t n_vocab = model_.n_vocab();
    std::vector<std::vector<float>> logits(parts.size());
    for (int64_t done = 0; done < int64_t(all.size());) {
        const int64_t m = std::min(max_batch_, int64_t(all.size()) - done);
        std::vector<Row> chunk, last;
        std::vector<size_t> owners;  // the part each output row belongs to
        for (int64_t i = done; i < done + m; ++i) {
            const auto it = std::find(ends.begin(), ends.end(), i + 1);
            if (it != ends.end()) {
                last.push_back(all[size_t(i)]);
                owners.push_back(size_t(it - ends.begin()));
            } else {
                chunk.push_back(all[size_t(i)]);
            }
        }
        const int64_t n_out = int64_t(last.size());
        chunk.insert(chunk.end(), last.begin(), last.end());
        DecodeOutput out;
        run_graph(chunk, std::max<int64_t>(n_out, 1), false, false, out);
        for (int64_t k = 0; k < n_out; ++k) {
            logits[owners[size_t(k)]].assign(out.logits.begin() + k * n_vocab, out.logits.begin() + (k + 1) * n_vocab);
        }
        done += m;
    }
    return logits;
}

}  // namespace mimo
