#include "sessions/audio_tokenizer_session.h"

#include <cmath>
#include <limits>

#include "core/errors.h"
#include "core/graph.h"
#include "core/log.h"
#include "models/mimo_asr_names.h"
#include "models/mimo_tokenizer_names.h"

namespace mimo {

AudioTokenizerWeights::AudioTokenizerWeights(const std::string & path, std::shared_ptr<Backend> backend,
                                             const AudioTokenizerOptions & options)
    : LoadedModel(open_gguf_of_arch(path, names::tok::kArch, "a MiMo audio-tokenizer GGUF",
                                    {{names::asr::kArch, "this is the MiMo-ASR language-model file: pass it as the "
                                                         "model, and the mimo_tokenizer GGUF as the tokenizer"}}),
                  std::move(backend), [&options](const GgufFile & file, WeightStore & store) {
                      return std::make_unique<AudioTokenizerModel>(file, store, options);
                  }) {
    model_->finish_load(*backend_);
}

struct AudioTokenizerSession::Graph : GraphArena {
    using GraphArena::GraphArena;
    AudioEncoderGraph enc;
    bool keep_stages = false;
};

namespace {

size_t encoder_max_nodes(const AudioTokenizerHParams & hp) {
    return size_t(hp.n_layer) * AudioTokenizerModel::kNodesPerLayer + 512;
}

}  // namespace

AudioTokenizerSession::AudioTokenizerSession(std::shared_ptr<const AudioTokenizerWeights> weights)
    : weights_(std::move(weights)) {
    sched_enc_ = std::make_unique<Scheduler>(*weights_->backend(), encoder_max_nodes(weights_->model().hparams()));
    sched_rvq_ = std::make_unique<Scheduler>(*weights_->backend(), 64);
}

AudioTokenizerSession::~AudioTokenizerSession() {
    graph_.reset();  // before the scheduler that allocated it
}

AudioTokenizerSession::Graph & AudioTokenizerSession::prepare(int64_t t_mel, bool keep_stages) {
    if (graph_ && graph_->enc.t_mel == t_mel && graph_->keep_stages == keep_stages) return *graph_;
    graph_.reset();
    const size_t max_nodes = encoder_max_nodes(weights_->model().hparams());
    auto g = std::make_unique<Graph>(max_nodes);
    g->keep_stages = keep_stages;
    g->enc = weights_->model().build_encoder(g->ctx, g->gf, t_mel, keep_stages);
    sched_alloc_graph(sched_enc_->get(), g->gf, "audio-tokenizer");
    graph_ = std::move(g);
    return *graph_;
}

namespace {

TokenizerStage fetch_stage(ggml_tensor * t, const std::string & name) {
    TokenizerStage s;
    s.name = name;
    s.cols = t->ne[0];
    s.rows = t->ne[1];
    s.data.resize(size_t(s.rows * s.cols));
    ggml_backend_tensor_get(t, s.data.data(), 0, s.data.size() * sizeof(float));
    return s;
}

}  // namespace

TokenizerResult AudioTokenizerSession::encode_mel(const float * mel, int64_t t_mel, bool keep_stages) {
    const AudioTokenizerModel & model = weights_->model();
    const AudioTokenizerHParams & hp = model.hparams();
    if (!mel || t_mel < 1) fail(ErrorKind::InvalidArgument, "the log-mel input must have at least one frame");
    if (t_mel > kMaxMelFrames) {
        fail(ErrorKind::InvalidArgument,
             strfmt("a log-mel of %lld frames is longer than one tokenizer chunk allows (%lld); cut the audio into "
                    "30 s chunks first (mimo_ggml.audio.tokenizer_chunks)",
                    (long long) t_mel, (long long) kMaxMelFrames));
    }
    const int64_t nm = hp.n_mels;
    // validate, and transpose to the (T_mel, n_mels) time-fastest layout of the graph input
    std::vector<float> mel_tc(size_t(t_mel * nm));
    for (int64_t t = 0; t < t_mel; ++t) {
        for (int64_t c = 0; c < nm; ++c) {
            const float v = mel[t * nm + c];
            if (!std::isfinite(v)) {
                fail(ErrorKind::InvalidArgument, strfmt("the log-mel input holds a non-finite value at frame %lld, "
                                                        "mel bin %lld",
                                                        (long long) t, (long long) c));
            }
            mel_tc[size_t(c * t_mel + t)] = v;
        }
    }

    Graph & g = prepare(t_mel, keep_stages);
    ggml_backend_tensor_set(g.enc.mel, mel_tc.data(), 0, mel_tc.size() * sizeof(float));
    std::vector<int32_t> pos(size_t(g.enc.t_enc));
    for (int64_t i = 0; i < g.enc.t_enc; ++i) pos[size_t(i)] = int32_t(i);
    ggml_backend_tensor_set(g.enc.positions, pos.data(), 0, pos.size() * sizeof(int32_t));
    if (ggml_backend_sched_graph_compute(sched_enc_->get(), g.gf) != GGML_STATUS_SUCCESS) {
        fail(ErrorKind::Backend, "the audio-tokenizer encoder graph failed to compute");
    }

    TokenizerResult out;
    if (keep_stages) {
        out.stages.push_back(fetch_stage(g.enc.conv1, "tok_conv1_out"));
        out.stages.push_back(fetch_stage(g.enc.conv2, "tok_conv2_out"));
        for (size_t i = 0; i < g.enc.layers.size(); ++i) {
            out.stages.push_back(fetch_stage(g.enc.layers[i], "tok_layer" + std::to_string(i) + "_out"));
        }
        out.stages.push_back(fetch_stage(g.enc.xfmr, "tok_xfmr_out"));
        out.stages.push_back(fetch_stage(g.enc.pooled, "tok_pool_out"));
    }
    const int64_t t_code = g.enc.t_code;
    std::vector<float> pooled(size_t(t_code * hp.d_model));
    ggml_backend_tensor_get(g.enc.pooled, pooled.data(), 0, pooled.size() * sizeof(float));
    for (float v : pooled) {
        if (!std::isfinite(v)) fail(ErrorKind::Backend, "the audio-tokenizer encoder produced non-finite values");
    }
    quantize(pooled, t_code, out);
    return out;
}

// Residual VQ in float32 (spec §6): per stage one small graph gives
// ‖e‖² − 2 e·r for every centroid; the argmin (ties to the lowest index) and
// the residual update r -= e[code] are done here. ggml_argmax is not used:
// on ties it returns the last maximum on CPU and no fixed one on GPUs.
void AudioTokenizerSession::quantize(const std::vector<float> & pooled, int64_t t_code, TokenizerResult & out) {
    const AudioTokenizerModel & model = weights_->model();
    const int64_t d = model.hparams().d_model, n_cb = model.n_codebooks();
    out.n_frames = t_code;
    out.n_codebooks = n_cb;
    out.codes.assign(size_t(t_code * n_cb), 0);
    out.gaps.assign(size_t(t_code * n_cb), 0.0f);
    std::vector<float> r = pooled;
    std::vector<float> dist;
    for (int64_t s = 0; s < n_cb; ++s) {
        const int64_t K = model.hparams().codebook_sizes[size_t(s)];
        ggml_init_params params{ggml_tensor_overhead() * 16 + ggml_graph_overhead_custom(64, false), nullptr, true};
        ggml_context * ctx = ggml_init(params);
        if (!ctx) fail(ErrorKind::Backend, "out of memory creating the RVQ graph context");
        try {
            ggml_tensor * rin = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, d, t_code);
            ggml_set_input(rin);
            ggml_tensor * dt = model.build_distances(ctx, rin, s);
            ggml_set_output(dt);
            ggml_cgraph * gf = ggml_new_graph_custom(ctx, 64, false);
            ggml_build_forward_expand(gf, dt);
            sched_alloc_graph(sched_rvq_->get(), gf, "RVQ");
            ggml_backend_tensor_set(rin, r.data(), 0, r.size() * sizeof(float));
            if (ggml_backend_sched_graph_compute(sched_rvq_->get(), gf) != GGML_STATUS_SUCCESS) {
                fail(ErrorKind::Backend, "the RVQ distance graph failed to compute");
            }
            dist.resize(size_t(K * t_code));
            ggml_backend_tensor_get(dt, dist.data(), 0, dist.size() * sizeof(float));
            ggml_backend_sched_reset(sched_rvq_->get());
        } catch (...) {
            ggml_free(ctx);
            throw;
        }
        ggml_free(ctx);

        const std::vector<float> & cb = model.codebook_host(s);
        for (int64_t t = 0; t < t_code; ++t) {
            const float * row = dist.data() + t * K;
            int64_t best = 0;
            float b1 = row[0], b2 = std::numeric_limits<float>::infinity();
            for (int64_t k = 1; k < K; ++k) {
                const float v = row[k];
                if (v < b1) {  // strict: a tie keeps the lower index
                    b2 = b1;
                    b1 = v;
                    best = k;
                } else if (v < b2) {
                    b2 = v;
                }
            }
            if (!std::isfinite(b1)) fail(ErrorKind::Backend, "the RVQ distances are not finite");
            out.codes[size_t(t * n_cb + s)] = int32_t(best);
            out.gaps[size_t(t * n_cb + s)] = b2 - b1;
            float * rt = r.data() + t * d;
            const float * e = cb.data() + best * d;
            for (int64_t c = 0; c < d; ++c) rt[c] -= e[c];
        }
    }
}

}  // namespace mimo
