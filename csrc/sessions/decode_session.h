// The decode-session core shared by every decoder model (the ASR model's
// Qwen2, the mimo2 MoE backbone): per-request state over immutable weights.
//
// It owns the KV cache, a scheduler on backend instances of its own, and the
// last graph (a step with the same shapes only re-sets the inputs). Inputs
// longer than max_batch rows are split into several graphs; the attended
// cache rows grow in kKvBucket steps so a step graph is rebuilt only when a
// bucket fills.
//
// Sequences: a session holds n_seq independent sequences (batched decoding:
// several transcriptions share every weight read). Full-attention layers give
// each sequence n_ctx slots (slot = seq * n_ctx + position) and the mask keeps
// each row to its own sequence, so one graph may mix rows of several
// sequences in any order. Sliding-window layers (one sequence only) hold a
// ring of (window_keys - 1 + max_batch) slots (slot = position mod ring size),
// all that a graph of up to max_batch new positions can see, so their memory
// stays fixed however long the context; the session records the absolute
// position each ring slot holds and builds the window mask from them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/backend.h"
#include "core/decoder.h"
#include "core/kv_cache.h"
#include "core/kv_ring.h"

namespace mimo {

// Rows appended to one sequence: token ids for every row (nullptr: all rows
// are embeddings), and optionally n_emb embedding rows of n_embd floats that
// replace rows [emb_begin, emb_begin + n_emb).
struct DecodeRows {
    const int32_t * tokens = nullptr;
    const float * embeddings = nullptr;
    int64_t emb_begin = 0, n_emb = 0;
};

struct DecodeOutput {
    int64_t n_out = 0;
    std::vector<float> logits;  // n_out rows of n_vocab
    std::vector<float> hidden;  // n_out rows of n_embd (when asked)
    std::vector<float> inputs;  // every row's input, n rows of n_embd (when asked)
    std::vector<float> captured;  // every row's captured layers (set_capture), n rows of capture_width
};

// One sequence's part of a batched eval: n rows appended to sequence `seq`.
struct SeqRows {
    int64_t seq = 0;
    DecodeRows rows;
    int64_t n = 0;
};

class DecodeSession {
public:
    // keep_alive: the object that owns `model` (kept alive as long as the
    // session). n_ctx: positions per sequence. window_keys: keys a SWA query
    // sees, itself included (none: the model's default). max_batch: rows per
    // graph; also sizes SWA rings. n_seq: independent sequences (> 1 only
    // for models without sliding-window layers).
    DecodeSession(std::shared_ptr<const void> keep_alive, const DecoderModel & model, const Backend & backend,
                  int64_t n_ctx, ggml_type kv_type, std::optional<int64_t> window_keys = std::nullopt,
                  int64_t max_batch = kDefaultMaxBatch, int64_t n_seq = 1);
    ~DecodeSession();
    DecodeSession(const DecodeSession &) = delete;
    DecodeSession & operator=(const DecodeSession &) = delete;

    // Appends n positions to sequence 0; outputs for the last n_out of them.
    DecodeOutput eval(const DecodeRows & rows, int64_t n, int64_t n_out, bool want_hidden = false,
                      bool want_inputs = false);
    // Appends n tokens to sequence 0; returns the logits of the last position.
    std::vector<float> eval_tokens(const int32_t * tokens, int64_t n);
    // Appends rows to several sequences at once (each at most once); returns
    // the logits of each part's last row, in the order of `parts`.
    std::vector<std::vector<float>> eval_batch(const std::vector<SeqRows> & parts);

    int64_t n_past(int64_t seq = 0) const { return n_past_.at(size_t(seq)); }
    int64_t n_ctx() const { return n_ctx_; }
    int64_t n_seq() const { return n_seq_; }
    int64_t window_keys() const { return window_keys_; }
    int64_t swa_slots() const { return swa_slots_; }
    int64_t max_batch() const { return max_batch_; }
    const DecoderModel & model() const { return model_; }
    const KvCache & kv() const { return *kv_; }
    size_t kv_bytes_per_token() const;  // bytes each context position adds (full layers)
    size_t kv_bytes_swa() const;        // fixed bytes of the SWA rings

    // Every later eval also returns, for each evaluated row, the residual
    // stream after each of these layers (kCaptureFinalNorm: the final-norm
    // hidden), concatenated in this order (a speculative drafter's input).
    void set_capture(std::vector<int32_t> layers);
    const std::vector<int32_t> & capture() const { return capture_; }
    int64_t capture_width() const { return int64_t(capture_.size()) * model_.n_embd(); }

    void reset();              // every sequence
    void reset_seq(int64_t seq);
    // Forget positions >= n of sequence 0. On SWA rings only possible while
    // the window before n is still held (at most max_batch positions back
    // after a long context); otherwise InvalidArgument.
    void truncate(int64_t n);
    bool can_truncate(int64_t n) const;

    static constexpr int64_t kDefaultMaxBatch = 512;  // rows per graph
    static constexpr int64_t kKvBucket = 256;         // attended rows grow in these steps

private:
    // One row of a graph: its sequence and position, and where its input comes from.
    struct Row {
        int64_t seq = 0, pos = 0;
        int32_t token = 0;        // the token id (a placeholder for embedding rows)
        const float * embedding = nullptr;  // n_embd floats, or nullptr: the token's table row
    };
    struct Graph;
    struct Shape;
    Graph & prepare(const Shape & shape);
    // One graph over rows (at most max_batch); outputs of its last n_out rows appended to out.
    void run_graph(const std::vector<Row> & rows, int64_t n_out, bool want_hidden, bool want_inputs,
                   DecodeOutput & out);
    void append_rows(std::vector<Row> & dst, int64_t seq, const DecodeRows & rows, int64_t n) const;
    void check_room(int64_t seq, int64_t n) const;

    std::shared_ptr<const void> keep_alive_;
    const DecoderModel & model_;
    std::unique_ptr<KvCache> kv_;
    std::unique_ptr<Scheduler> sched_;
    std::unique_ptr<Graph> graph_;  // the last graph, kept for reuse
    int64_t n_ctx_ = 0;
    int64_t n_seq_ = 1;
    std::vector<int64_t> n_past_;   // per sequence
    int64_t window_keys_ = 0;
    int64_t max_batch_ = kDefaultMaxBatch;
    int64_t swa_slots_ = 0;
    bool has_full_ = false, has_swa_ = false;
    KvRing swa_ring_;               // the absolute position each SWA ring slot holds
    std::vector<int32_t> capture_;  // layers whose output rows every eval returns
    std::vector<uint16_t> mask_;    // F16 scratch
};

}  // namespace mimo
