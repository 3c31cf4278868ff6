// Graph helpers shared by every model: norms, projections, feed-forward
// blocks and attention over a KV cache. Each returns a new ggml node.
#pragma once

#include "core/kv_cache.h"
#include "ggml-backend.h"
#include "ggml.h"

namespace mimo {

ggml_tensor * rms_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, float eps);
ggml_tensor * layer_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, ggml_tensor * bias, float eps);

// y = W x (+ b); W stored as ne = (in, out), x as (in, T)
ggml_tensor * linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b = nullptr);

// down(silu(gate x) * up x)
ggml_tensor * swiglu_ffn(ggml_context * ctx, ggml_tensor * x, ggml_tensor * gate, ggml_tensor * up,
                         ggml_tensor * down);

// Rows [offset, offset + n) of a (width, N) matrix, as a view.
ggml_tensor * row_slice(ggml_context * ctx, ggml_tensor * x, int64_t offset, int64_t n);
// the rows of x (ne0, T) listed in rows (I32), as a new tensor (ggml_get_rows: F32); a copy, not a
// view, so it stays correct when x was computed on another device
ggml_tensor * gather_rows(ggml_context * ctx, ggml_tensor * x, ggml_tensor * rows);

// Scaled-dot-product attention through ggml_flash_attn_ext.
//   q: (head_dim_k, n_head, T)     k: (head_dim_k, n_kv, n_head_kv)
//   v: (head_dim_v, n_kv, n_head_kv)   mask: (n_kv, T) F16 or nullptr
//   sinks: optional F32 (n_head) extra softmax-denominator logits
// returns (head_dim_v * n_head, T)
ggml_tensor * attention(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v, ggml_tensor * mask,
                        float scale, ggml_tensor * sinks = nullptr);

// NeoX (rotate-half) RoPE over the first n_rot dims of each head of
// x (head_dim, n_head, T) at `positions` (I32, T); the other dims pass
// through. freq_factors (F32, n_rot/2) divides each pair's frequency.
ggml_tensor * rope_neox(ggml_context * ctx, ggml_tensor * x, ggml_tensor * positions, int64_t n_rot, float base,
                        ggml_tensor * freq_factors = nullptr);

// Writes K (head_dim_k, n_head_kv, T) and V (n_head_kv * head_dim_v, T)
// into cache layer `il` at `slots` (I64, T); nodes added to gf in order,
// so attention built after them reads what they wrote.
void cache_write(ggml_context * ctx, ggml_cgraph * gf, const KvCache & kv, size_t il, ggml_tensor * k, ggml_tensor * v,
                 ggml_tensor * slots);

// Writes this graph's K (head_dim_k, n_head_kv, T) and V (n_head_kv *
// head_dim_v, T) into cache layer `il` at `slots`, then attends q over the
// first n_kv cache rows (see attention()). q and mask may cover only the
// last rows of the graph (K/V are written for all of them).
ggml_tensor * cached_attention(ggml_context * ctx, ggml_cgraph * gf, const KvCache & kv, size_t il, ggml_tensor * q,
                               ggml_tensor * k, ggml_tensor * v, ggml_tensor * slots, int64_t n_kv, ggml_tensor * mask,
                               float scale, ggml_tensor * sinks = nullptr);

// The metadata-only ggml context a graph of up to max_nodes nodes is built in,
// and that graph; sessions derive their kept-for-reuse graph state from it.
struct GraphArena {
    explicit GraphArena(size_t max_nodes);
    ~GraphArena();
    GraphArena(const GraphArena &) = delete;
    GraphArena & operator=(const GraphArena &) = delete;
    ggml_context * ctx = nullptr;
    ggml_cgraph * gf = nullptr;
};

// Marks t as a graph input (its data is set before each compute); returns t.
ggml_tensor * graph_input(ggml_tensor * t);

// Resets the scheduler and allocates gf's nodes in it; a Backend error naming
// `what` if the memory cannot be had.
void sched_alloc_graph(ggml_backend_sched_t sched, ggml_cgraph * gf, const char * what);

// A (head_dim, n_positions, n_head) view of a KV-cache tensor that stores
// one row of n_head * head_dim values per position.
ggml_tensor * cache_heads_view(ggml_context * ctx, ggml_tensor * cache, int64_t head_dim, int64_t n_head,
                               int64_t n_positions);

}  // namespace mimo
