#include "sessions/asr_model.h"

#include <chrono>

#include "core/errors.h"
#include "core/log.h"
#include "models/mimo_asr_names.h"
#include "models/mimo_tokenizer_names.h"

namespace mimo {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void poll(const AsrProgress & progress, int32_t token) {
    if (progress && !progress(token)) fail(ErrorKind::Cancelled, "the transcription was cancelled");
}

}  // namespace

AsrLmWeights::AsrLmWeights(const std::string & path, std::shared_ptr<Backend> backend, bool with_adapter,
                           bool with_lm)
    : LoadedModel(open_gguf_of_arch(path, names::asr::kArch, "a MiMo-V2.5-ASR model GGUF",
                                    {{names::tok::kArch, "this is the audio-tokenizer file: pass it as the tokenizer, "
                                                         "not the model"}}),
                  std::move(backend), [&](const GgufFile & file, WeightStore & store) {
                      auto parts = std::make_unique<AsrLmParts>();
                      if (with_adapter) parts->adapter = std::make_unique<AsrAdapterModel>(file, store);
                      if (with_lm) parts->lm = std::make_unique<Qwen2Model>(file, store, names::asr::kLlmKeyPrefix);
                      return parts;
                  }) {
    if (model_->adapter) model_->adapter->finish_load();
}

const AsrAdapterModel & AsrLmWeights::adapter() const {
    if (!model_->adapter) fail(ErrorKind::InvalidArgument, "internal: the audio adapter was not loaded");
    return *model_->adapter;
}

const Qwen2Model & AsrLmWeights::lm() const {
    if (!model_->lm) fail(ErrorKind::InvalidArgument, "internal: the language model was not loaded");
    return *model_->lm;
}

AsrModel::AsrModel(const std::string & model_path, const std::string & tokenizer_path, std::shared_ptr<Backend> backend,
                   const AudioTokenizerOptions & tokenizer_options)
    : backend_(std::move(backend)) {
    lm_ = std::make_shared<AsrLmWeights>(model_path, backend_, true, true);
    tokenizer_ = std::make_shared<AudioTokenizerWeights>(tokenizer_path, backend_, tokenizer_options);
    const AsrAdapterHParams & a = lm_->adapter().hparams();
    const int64_t n_cb = tokenizer_->model().n_codebooks();
    if (n_cb != a.n_channels) {
        fail(ErrorKind::ModelLoad,
             strfmt("%s gives %lld code channels but the model %s reads %lld: the tokenizer and the model do not "
                    "belong together",
                    tokenizer_path.c_str(), (long long) n_cb, model_path.c_str(), (long long) a.n_channels));
    }
    if (a.n_embd != lm_->lm().hparams().n_embd) {
        fail(ErrorKind::ModelLoad, strfmt("%s: the audio adapter writes %lld-wide rows, the LM reads %lld",
                                          model_path.c_str(), (long long) a.n_embd,
                                          (long long) lm_->lm().hparams().n_embd));
    }
}

AsrSession::AsrSession(std::shared_ptr<const AsrModel> model, int64_t n_ctx, ggml_type kv_type)
    : model_(std::move(model)),
      tokenizer_(model_->tokenizer()),
      adapter_(model_->lm_weights()),
      lm_(model_->lm_weights(), model_->lm_weights()->lm(), *model_->backend(), n_ctx, kv_type) {}

std::vector<int32_t> AsrSession::encode(const std::vector<MelChunk> & mels, int64_t & n_frames,
                                        const AsrProgress & progress) {
    const int64_t C = model_->adapter_hparams().n_channels, S = model_->adapter_hparams().group_size;
    if (mels.empty()) fail(ErrorKind::InvalidArgument, "a clip needs at least one log-mel chunk");
    std::vector<int32_t> codes;
    for (const MelChunk & m : mels) {
        TokenizerResult r = tokenizer_.encode_mel(m.data, m.t_mel, false);
        codes.insert(codes.end(), r.codes.begin(), r.codes.end());
        poll(progress, -1);
    }
    n_frames = int64_t(codes.size()) / C;
    if (n_frames == 0) fail(ErrorKind::Audio, "the clip is too short to give any audio code");
    while (int64_t(codes.size()) / C % S != 0) {  // repeat the last frame up to a whole group
        codes.insert(codes.end(), codes.end() - C, codes.end());
    }
    return codes;
}

std::vector<int32_t> AsrSession::prompt_rows(const AsrClipRequest & request, int64_t n_groups) const {
    std::vector<int32_t> ids(request.prefix);
    ids.insert(ids.end(), size_t(n_groups), 0);  // placeholders: these rows take the audio features
    ids.insert(ids.end(), request.suffix.begin(), request.suffix.end());
    return ids;
}

AsrAdapterResult AsrSession::encode_clip(const AsrClipRequest & request, AsrClipResult & out,
                                         const AsrProgress & progress) {
    const int64_t C = model_->adapter_hparams().n_channels, S = model_->adapter_hparams().group_size;
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> codes = encode(request.mels, out.n_frames, progress);
    out.codes.assign(codes.begin(), codes.begin() + out.n_frames * C);
    out.n_groups = int64_t(codes.size()) / C / S;
    out.n_prompt = int64_t(request.prefix.size() + request.suffix.size()) + out.n_groups;
    AsrAdapterResult features = adapter_.run(codes.data(), out.n_groups * S, false);
    out.encode_s = seconds_since(t0);
    return features;
}

GenerationOptions AsrSession::generation_for(const AsrClipRequest & request, const AsrClipResult & clip,
                                             int64_t n_ctx) const {
    const int64_t room = n_ctx - clip.n_prompt;
    if (room < 1) {
        fail(ErrorKind::InvalidArgument,
             strfmt("this clip needs %lld LM positions, more than the context of %lld; use shorter clips "
                    "(max_clip_s) or a larger n_ctx",
                    (long long) clip.n_prompt, (long long) n_ctx));
    }
    GenerationOptions gen = request.generation;
    gen.max_tokens = std::min(gen.max_tokens, room);
    return gen;
}

AsrClipResult AsrSession::transcribe(const AsrClipRequest & request, const AsrProgress & progress) {
    AsrClipResult out;
    AsrAdapterResult features = encode_clip(request, out, progress);
    poll(progress, -1);
    GenerationOptions gen = generation_for(request, out, lm_.n_ctx());

    auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = prompt_rows(request, out.n_groups);
    lm_.reset();
    DecodeRows rows;
    rows.tokens = ids.data();
    rows.embeddings = features.features.data();
    rows.emb_begin = int64_t(request.prefix.size());
    rows.n_emb = out.n_groups;
    DecodeOutput first = lm_.eval(rows, out.n_prompt, 1);
    out.prefill_s = seconds_since(t0);
    poll(progress, -1);

    t0 = std::chrono::steady_clock::now();
    TokenGenerator generator(lm_, std::move(first.logits), std::move(gen));
    while (auto t = generator.next()) {
        out.logprobs.push_back(t->logprob);
        if (!t->is_stop) out.tokens.push_back(t->id);
        poll(progress, t->id);
    }
    out.finish = generator.finish_reason();
    out.decode_s = seconds_since(t0);
    return out;
}

std::vector<AsrClipResult> AsrSession::transcribe_batch(const std::vector<AsrClipRequest> & requests,
                                                        int64_t batch_size, int64_t n_ctx_seq,
                                                        const AsrBatchProgress & progress, const AsrClipDone & done) {
    if (batch_size < 1 || batch_size > 64) {
        fail(ErrorKind::InvalidArgument, strfmt("batch_size must be between 1 and 64, got %lld", (long long) batch_size));
    }
    if (!batch_lm_ || batch_lm_->n_seq() < batch_size || batch_lm_->n_ctx() < n_ctx_seq) {
        batch_lm_.reset();  // before the new one is allocated: the memory is reused
        batch_lm_ = std::make_unique<DecodeSession>(model_->lm_weights(), model_->lm_weights()->lm(),
                                                    *model_->backend(), n_ctx_seq, lm_.kv().type(), std::nullopt,
                                                    DecodeSession::kDefaultMaxBatch, batch_size);
    }
    DecodeSession & lm = *batch_lm_;
    lm.reset();
    std::vector<AsrClipResult> results(requests.size());
    struct Active {
        size_t clip;
        std::unique_ptr<TokenGenerator> generator;
    };
    std::vector<Active> active;                       // at most batch_size, each on its own sequence
    std::vector<int64_t> free_seqs;
    for (int64_t s = batch_size - 1; s >= 0; --s) free_seqs.push_back(s);
    size_t next_clip = 0;
    while (next_clip < requests.size() || !active.empty()) {
        // admit waiting clips into free sequences; their prompts are prefilled in one graph
        std::vector<size_t> admitted;
        std::vector<AsrAdapterResult> features;
        std::vector<std::vector<int32_t>> prompts;
        std::vector<SeqRows> parts;
        while (admitted.size() < free_seqs.size() && next_clip < requests.size()) {
            const size_t c = next_clip++;
            const AsrProgress clip_progress = progress ? AsrProgress([&, c](int32_t t) { return progress(int64_t(c), t); })
                                                       : AsrProgress();
            features.push_back(encode_clip(requests[c], results[c], clip_progress));
            poll(clip_progress, -1);
            generation_for(requests[c], results[c], lm.n_ctx());  // refuses a clip that cannot fit, before any LM work
            prompts.push_back(prompt_rows(requests[c], results[c].n_groups));
            admitted.push_back(c);
        }
        if (!admitted.empty()) {
            for (size_t k = 0; k < admitted.size(); ++k) {
                const size_t c = admitted[k];
                SeqRows p;
                p.seq = free_seqs.back();
                free_seqs.pop_back();
                lm.reset_seq(p.seq);
                p.rows.tokens = prompts[k].data();
                p.rows.embeddings = features[k].features.data();
                p.rows.emb_begin = int64_t(requests[c].prefix.size());
                p.rows.n_emb = results[c].n_groups;
                p.n = results[c].n_prompt;
                parts.push_back(p);
            }
            const auto t0 = std::chrono::steady_clock::now();
            std::vector<std::vector<float>> logits = lm.eval_batch(parts);
            const double share = seconds_since(t0) / double(admitted.size());
            for (size_t k = 0; k < admitted.size(); ++k) {
                const size_t c = admitted[k];
                results[c].prefill_s = share;
                active.push_back({c, std::make_unique<TokenGenerator>(
                                         lm, std::move(logits[k]),
                                         generation_for(requests[c], results[c], lm.n_ctx()), parts[k].seq)});
            }
        }
        // one decode round over every active clip
        std::vector<TokenGenerator *> gens;
        for (Active & a : active) gens.push_back(a.generator.get());
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::optional<GeneratedToken>> tokens = TokenGenerator::next_together(lm, gens);
        const double share = seconds_since(t0) / double(active.size());
        for (size_t i = 0; i < active.size(); ++i) {
            AsrClipResult & r = results[active[i].clip];
            r.decode_s += share;
            if (const auto & t = tokens[i]) {
                r.logprobs.push_back(t->logprob);
                if (!t->is_stop) r.tokens.push_back(t->id);
                if (progress && !progress(int64_t(active[i].clip), t->id)) {
                    fail(ErrorKind::Cancelled, "the transcription was cancelled");
                }
            }
        }
        for (size_t i = active.size(); i-- > 0;) {  // finished clips free their sequence
            if (active[i].generator->finished()) {
                results[active[i].clip].finish = active[i].generator->finish_reason();
                if (done) done(int64_t(active[i].clip), results[active[i].clip]);
                free_seqs.push_back(active[i].generator->seq());
                active.erase(active.begin() + std::ptrdiff_t(i));
            }
        }
    }
    return results;
}

AsrClipStages AsrSession::stages(const AsrClipRequest & request) {
    const int64_t C = model_->adapter_hparams().n_channels, S = model_->adapter_hparams().group_size;
    AsrClipStages out;
    int64_t n_frames = 0;
    out.codes = encode(request.mels, n_frames, nullptr);
    out.n_groups = int64_t(out.codes.size()) / C / S;
    out.adapter = adapter_.run(out.codes.data(), out.n_groups * S, true);
    const std::vector<int32_t> ids = prompt_rows(request, out.n_groups);
    out.n_prompt = int64_t(ids.size());
    lm_.reset();
    DecodeRows rows;
    rows.tokens = ids.data();
    rows.embeddings = out.adapter.features.data();
    rows.emb_begin = int64_t(request.prefix.size());
    rows.n_emb = out.n_groups;
    DecodeOutput o = lm_.eval(rows, out.n_prompt, 1, true, true);
    lm_.reset();
    out.inputs = std::move(o.inputs);
    out.last_hidden = std::move(o.hidden);
    out.logits = std::move(o.logits);
    return out;
}

}  // namespace mimo
