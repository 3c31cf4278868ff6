// What the shared decode-session core (sessions/decode_session) needs from a
// decoder-only language model: the inputs of one forward graph, its outputs,
// and the model interface (Qwen2 of the ASR model, the mimo2 MoE backbone).
//
// Rows of a graph are positions (of one or several sequences, in any order).
// Each row's input comes from the token table (tokens) or from `embeddings`
// (the ASR path puts its audio features there); both are joined inside the
// graph through `row_source`. Full-attention layers write the rows' K/V at
// `slots_full` and read the first n_kv_full cache rows under `mask_full`;
// sliding-window layers do the same with the *_swa inputs over their ring.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/kv_cache.h"
#include "ggml.h"

namespace mimo {

struct DecoderInputs {
    ggml_tensor * tokens = nullptr;      // I32 (T), or nullptr when every row is an embedding, in order
    ggml_tensor * embeddings = nullptr;  // F32 (n_embd, n_emb), or nullptr
    // with both: I32 (T), row i's input is row row_source[i] of [token rows (T) | embedding rows (n_emb)]
    ggml_tensor * row_source = nullptr;
    ggml_tensor * positions = nullptr;   // I32 (T), absolute
    ggml_tensor * slots_full = nullptr, * slots_swa = nullptr;  // I64 (T)
    ggml_tensor * mask_full = nullptr, * mask_swa = nullptr;    // F16 (n_kv, T)
    int64_t n_kv_full = 0, n_kv_swa = 0;
    int64_t n_out = 1;        // the last n_out rows get outputs
    // I32 (n_out): the rows T - n_out .. T - 1. Given, the last layer runs past its K/V write on
    // those rows only, gathered (not views: the rows may come from a layer on another device);
    // left null when `capture` is set
    ggml_tensor * out_rows = nullptr;
    bool want_hidden = false;  // also output the final-norm hidden rows
    bool want_inputs = false;  // also output the joined input rows (a parity stage)
    // also output, for every row, the residual stream after each of these
    // layers (kCaptureFinalNorm: the final-norm hidden), concatenated; no
    // row of the last layer is pruned then
    std::vector<int32_t> capture;
};

inline constexpr int32_t kCaptureFinalNorm = -1;

struct DecoderOutputs {
    ggml_tensor * logits = nullptr;  // (n_vocab, n_out)
    ggml_tensor * hidden = nullptr;  // (n_embd, n_out) when asked
    ggml_tensor * inputs = nullptr;  // (n_embd, T) when asked
    ggml_tensor * captured = nullptr;  // (n_embd * capture.size(), T) when asked
};

class DecoderModel {
public:
    virtual ~DecoderModel() = default;
    virtual int64_t n_vocab() const = 0;
    virtual int64_t n_embd() const = 0;
    virtual int64_t n_ctx_train() const = 0;
    virtual int64_t n_layer() const = 0;
    virtual bool has_full_layers() const = 0;
    virtual bool has_swa_layers() const = 0;
    virtual int64_t default_window_keys() const { return 0; }  // keys a SWA query sees, itself included
    virtual bool is_swa_layer(size_t il) const = 0;
    // per-layer cache shapes: full layers hold n_ctx slots, SWA layers swa_slots
    virtual std::vector<KvLayerShape> kv_shapes(int64_t n_ctx, int64_t swa_slots) const = 0;
    virtual size_t max_graph_nodes() const = 0;
    virtual DecoderOutputs build(ggml_context * ctx, ggml_cgraph * gf, const DecoderInputs & in,
                                 const KvCache & kv) const = 0;
};

// The graph's input rows: token-table rows joined with the embedding rows.
ggml_tensor * decoder_input_rows(ggml_context * ctx, ggml_tensor * tok_embd, const DecoderInputs & in);

// Marks the outputs the inputs ask for and expands the graph to them: logits
// = head(hidden) of the last n_out rows (hidden may hold every row, when the
// last layer was not pruned); `inputs` are the joined rows of decoder_input_rows.
DecoderOutputs decoder_outputs(ggml_context * ctx, ggml_cgraph * gf, const DecoderInputs & in, ggml_tensor * inputs,
                               ggml_tensor * hidden, ggml_tensor * head);

}  // namespace mimo
