#include "core/decoder.h"

#include "core/errors.h"
#include "core/graph.h"

namespace mimo {

ggml_tensor * decoder_input_rows(ggml_context * ctx, ggml_tensor * tok_embd, const DecoderInputs & in) {
    if (!in.embeddings) return ggml_get_rows(ctx, tok_embd, in.tokens);
    if (!in.tokens) return in.embeddings;
    if (!in.row_source) fail(ErrorKind::Generic, "internal: token and embedding rows without a row_source");
    // every row has a token id (placeholders for the embedding rows); one gather picks each row's source
    ggml_tensor * both = ggml_concat(ctx, ggml_get_rows(ctx, tok_embd, in.tokens), in.embeddings, 1);
    return ggml_get_rows(ctx, both, in.row_source);
}

DecoderOutputs decoder_outputs(ggml_context * ctx, ggml_cgraph * gf, const DecoderInputs & in, ggml_tensor * inputs,
                               ggml_tensor * hidden, ggml_tensor * head) {
    DecoderOutputs out;
    // rows the last layer did not prune: only the last n_out go through the head
    const int64_t T = hidden->ne[1];
    if (T > in.n_out) hidden = row_slice(ctx, hidden, T - in.n_out, in.n_out);
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
