#include "core/decoder.h"

#include "core/errors.h"

namespace mimo {

ggml_tensor * decoder_input_rows(ggml_context * ctx, ggml_tensor * tok_embd, const DecoderInputs & in) {
    if (!in.embeddings) return ggml_get_rows(ctx, tok_embd, in.tokens);
    if (!in.tokens) return in.embeddings;
    // every row has a token id (the embedding rows' ids are placeholders); the
    // embedding rows replace a contiguous span of them
    ggml_tensor * text = ggml_get_rows(ctx, tok_embd, in.tokens);  // (n_embd, T)
    const int64_t T = text->ne[1], b = in.emb_begin, e = b + in.embeddings->ne[1];
    if (b < 0 || e > T) fail(ErrorKind::Generic, "internal: embedding rows outside the graph's rows");
    auto rows = [&](int64_t r0, int64_t r1) {
        return ggml_view_2d(ctx, text, text->ne[0], r1 - r0, text->nb[1], size_t(r0) * text->nb[1]);
    };
    ggml_tensor * x = in.embeddings;
    if (b > 0) x = ggml_concat(ctx, rows(0, b), x, 1);
    if (e < T) x = ggml_concat(ctx, x, rows(e, T), 1);
    return x;
}

DecoderOutputs decoder_outputs(ggml_context * ctx, ggml_cgraph * gf, const DecoderInputs & in, ggml_tensor * inputs,
                               ggml_tensor * hidden, ggml_tensor * head) {
    DecoderOutputs out;
    out.logits = ggml_mul_mat(ctx, head, hidden);
    ggml_set_output(out.logits);
    ggml_build_forward_expand(gf, out.logits);
    if (in.want_hidden) {
        out.hidden = hidden;
        ggml_set_output(hidden);
    }
    if (in.want_inputs) {
        out.inputs = inputs;
        ggml_set_output(inputs);
        ggml_build_forward_expand(gf, inputs);
    }
    return out;
}

}  // namespace mimo
