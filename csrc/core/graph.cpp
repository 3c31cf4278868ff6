#include "core/graph.h"

#include "core/errors.h"

namespace mimo {

ggml_tensor * rms_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, float eps) {
    ggml_tensor * y = ggml_rms_norm(ctx, x, eps);
    return weight ? ggml_mul(ctx, y, weight) : y;
}

ggml_tensor * layer_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, ggml_tensor * bias, float eps) {
    ggml_tensor * y = ggml_norm(ctx, x, eps);
    if (weight) y = ggml_mul(ctx, y, weight);
    if (bias) y = ggml_add(ctx, y, bias);
    return y;
}

ggml_tensor * linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b) {
    ggml_tensor * y = ggml_mul_mat(ctx, w, x);
    return b ? ggml_add(ctx, y, b) : y;
}

ggml_tensor * swiglu_ffn(ggml_context * ctx, ggml_tensor * x, ggml_tensor * gate, ggml_tensor * up,
                         ggml_tensor * down) {
    ggml_tensor * g = ggml_mul_mat(ctx, gate, x);
    ggml_tensor * u = ggml_mul_mat(ctx, up, x);
    return ggml_mul_mat(ctx, down, ggml_swiglu_split(ctx, g, u));
}

ggml_tensor * row_slice(ggml_context * ctx, ggml_tensor * x, int64_t offset, int64_t n) {
    return ggml_view_2d(ctx, x, x->ne[0], n, x->nb[1], size_t(offset) * x->nb[1]);
}

ggml_tensor * gather_rows(ggml_context * ctx, ggml_tensor * x, ggml_tensor * rows) {
    return ggml_get_rows(ctx, x, rows);
}

ggml_tensor * attention(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v, ggml_tensor * mask,
                        float scale, ggml_tensor * sinks) {
    const int64_t n_head = q->ne[1];
    const int64_t n_tokens = q->ne[2];
    const int64_t head_dim_v = v->ne[0];
    q = ggml_permute(ctx, q, 0, 2, 1, 3);  // (head_dim, T, n_head)
    ggml_tensor * out = ggml_flash_attn_ext(ctx, q, k, v, mask, scale, 0.0f, 0.0f);
    ggml_flash_attn_ext_set_prec(out, GGML_PREC_F32);
    if (sinks) ggml_flash_attn_ext_add_sinks(out, sinks);
    return ggml_reshape_2d(ctx, out, head_dim_v * n_head, n_tokens);  // out is (head_dim_v, n_head, T)
}

ggml_tensor * rope_neox(ggml_context * ctx, ggml_tensor * x, ggml_tensor * positions, int64_t n_rot, float base,
                        ggml_tensor * freq_factors) {
    // no context extension: original context 0, freq scale 1, no YaRN ramp
    return ggml_rope_ext(ctx, x, positions, freq_factors, int(n_rot), GGML_ROPE_TYPE_NEOX, 0, base, 1.0f, 0.0f, 1.0f,
                         0.0f, 0.0f);
}

void cache_write(ggml_context * ctx, ggml_cgraph * gf, const KvCache & kv, size_t il, ggml_tensor * k, ggml_tensor * v,
                 ggml_tensor * slots) {
    const int64_t T = k->ne[2];
    ggml_build_forward_expand(gf, ggml_set_rows(ctx, kv.k(il), ggml_reshape_2d(ctx, k, k->ne[0] * k->ne[1], T), slots));
    ggml_build_forward_expand(gf, ggml_set_rows(ctx, kv.v(il), v, slots));
}

ggml_tensor * cached_attention(ggml_context * ctx, ggml_cgraph * gf, const KvCache & kv, size_t il, ggml_tensor * q,
                               ggml_tensor * k, ggml_tensor * v, ggml_tensor * slots, int64_t n_kv, ggml_tensor * mask,
                               float scale, ggml_tensor * sinks) {
    const int64_t hd_k = k->ne[0], n_head_kv = k->ne[1];
    const int64_t hd_v = v->ne[0] / n_head_kv;
    cache_write(ctx, gf, kv, il, k, v, slots);
    ggml_tensor * kc = cache_heads_view(ctx, kv.k(il), hd_k, n_head_kv, n_kv);
    ggml_tensor * vc = cache_heads_view(ctx, kv.v(il), hd_v, n_head_kv, n_kv);
    return attention(ctx, q, kc, vc, mask, scale, sinks);
}

ggml_tensor * graph_input(ggml_tensor * t) {
    ggml_set_input(t);
    return t;
}

GraphArena::GraphArena(size_t max_nodes) {
    ggml_init_params params{ggml_tensor_overhead() * max_nodes + ggml_graph_overhead_custom(max_nodes, false), nullptr,
                            true};
    ctx = ggml_init(params);
    if (!ctx) fail(ErrorKind::Backend, "out of memory creating a graph context");
    gf = ggml_new_graph_custom(ctx, max_nodes, false);
}

GraphArena::~GraphArena() {
    if (ctx) ggml_free(ctx);
}

void sched_alloc_graph(ggml_backend_sched_t sched, ggml_cgraph * gf, const char * what) {
    ggml_backend_sched_reset(sched);
    if (!ggml_backend_sched_alloc_graph(sched, gf)) {
        fail(ErrorKind::Backend, strfmt("could not allocate the %s graph (out of memory?)", what));
    }
}

ggml_tensor * cache_heads_view(ggml_context * ctx, ggml_tensor * cache, int64_t head_dim, int64_t n_head,
                               int64_t n_positions) {
    return ggml_view_3d(ctx, cache, head_dim, n_positions, n_head, cache->nb[1], ggml_row_size(cache->type, head_dim),
                        0);
}

}  // namespace mimo
