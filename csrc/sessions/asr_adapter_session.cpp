#include "sessions/asr_adapter_session.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/graph.h"
#include "core/log.h"
#include "sessions/asr_model.h"

namespace mimo {

struct AsrAdapterSession::Graph : GraphArena {
    using GraphArena::GraphArena;
    AsrAdapterGraph g;
};

AsrAdapterSession::AsrAdapterSession(std::shared_ptr<const AsrLmWeights> weights)
    : weights_(std::move(weights)), model_(weights_->adapter()) {
    sched_ = std::make_unique<Scheduler>(*weights_->backend(), model_.max_nodes());
}

AsrAdapterSession::~AsrAdapterSession() {
    graph_.reset();  // before the scheduler that allocated it
    sched_.reset();
}

AsrAdapterSession::Graph & AsrAdapterSession::prepare(int64_t n_groups) {
    if (graph_ && graph_->g.n_groups == n_groups) return *graph_;
    graph_.reset();
    const size_t max_nodes = model_.max_nodes();
    auto g = std::make_unique<Graph>(max_nodes);
    g->g = model_.build(g->ctx, g->gf, n_groups);
    sched_alloc_graph(sched_->get(), g->gf, "audio-adapter");
    graph_ = std::move(g);
    return *graph_;
}

void AsrAdapterSession::run_chunk(const int32_t * codes, int64_t n_groups, bool keep_stages,
                                  AsrAdapterResult & out) {
    const AsrAdapterHParams & hp = model_.hparams();
    const int64_t C = hp.n_channels, S = hp.group_size, N = S * n_groups;
    Graph & g = prepare(n_groups);

    // (frames, channels) row-major -> one run of N ids per channel
    std::vector<int32_t> ids(static_cast<size_t>(N * C));
    for (int64_t t = 0; t < N; ++t) {
        for (int64_t c = 0; c < C; ++c) ids[size_t(c * N + t)] = codes[t * C + c];
    }
    std::vector<int32_t> pos(static_cast<size_t>(N));
    for (int64_t t = 0; t < N; ++t) pos[size_t(t)] = int32_t(t % S);
    ggml_backend_tensor_set(g.g.codes, ids.data(), 0, ids.size() * sizeof(int32_t));
    ggml_backend_tensor_set(g.g.positions, pos.data(), 0, pos.size() * sizeof(int32_t));
    if (g.g.mask) {  // causal inside the group (only when the file says input_full_attention = false)
        std::vector<float> mask(static_cast<size_t>(S * S), 0.0f);
        for (int64_t i = 0; i < S; ++i) {
            for (int64_t j = i + 1; j < S; ++j) mask[size_t(i * S + j)] = -INFINITY;
        }
        ggml_backend_tensor_set(g.g.mask, mask.data(), 0, mask.size() * sizeof(float));
    }
    if (ggml_backend_sched_graph_compute(sched_->get(), g.gf) != GGML_STATUS_SUCCESS) {
        fail(ErrorKind::Backend, "the audio-adapter graph failed to compute");
    }

    auto append = [](std::vector<float> & dst, ggml_tensor * t) {
        const size_t at = dst.size(), n = size_t(ggml_nelements(t));
        dst.resize(at + n);
        ggml_backend_tensor_get(t, dst.data() + at, 0, n * sizeof(float));
    };
    const size_t first = out.features.size();
    append(out.features, g.g.features);
    for (size_t i = first; i < out.features.size(); ++i) {
        if (!std::isfinite(out.features[i])) fail(ErrorKind::Backend, "the audio adapter produced non-finite values");
    }
    if (keep_stages) {
        append(out.ilt_input, g.g.ilt_input);
        append(out.ilt_output, g.g.ilt_output);
    }
    out.n_groups += n_groups;
}

AsrAdapterResult AsrAdapterSession::run(const int32_t * codes, int64_t n_frames, bool keep_stages) {
    const AsrAdapterHParams & hp = model_.hparams();
    const int64_t C = hp.n_channels, S = hp.group_size;
    if (n_frames < 0 || n_frames % S != 0) {
        fail(ErrorKind::InvalidArgument,
             strfmt("the codes have %lld frames, which is not a multiple of the group size %lld; pad them by "
                    "repeating the last frame (mimo_ggml.prompt.pad_codes)",
                    (long long) n_frames, (long long) S));
    }
    for (int64_t t = 0; t < n_frames; ++t) {
        for (int64_t c = 0; c < C; ++c) {
            const int32_t v = codes[t * C + c];
            if (v < 0 || v >= hp.speech_vocab[size_t(c)]) {
                fail(ErrorKind::InvalidArgument,
                     strfmt("code %d at frame %lld, channel %lld is outside [0, %lld), the speech vocabulary of "
                            "that channel",
                            v, (long long) t, (long long) c, (long long) hp.speech_vocab[size_t(c)]));
            }
        }
    }
    AsrAdapterResult out;
    const int64_t n_groups = n_frames / S;
    out.features.reserve(size_t(n_groups * hp.n_embd));
    for (int64_t done = 0; done < n_groups;) {
        const int64_t m = std::min(kMaxGroupsPerGraph, n_groups - done);
        run_chunk(codes + done * S * C, m, keep_stages, out);
        done += m;
    }
    return out;
}

}  // namespace mimo
