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

AsrModel::AsrModel(const std::string & model_path, const std::string & tokenizer_path, const std::string & device,
                   std::optional<int64_t> n_threads, const AudioTokenizerOptions & tokenizer_options, bool repack_weights) {
    backend_ = std::make_shared<Backend>(device, n_threads, repack_weights);
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

AsrClipResult AsrSession::transcribe(const AsrClipRequest & request, const AsrProgress & progress) {
    const int64_t C = model_->adapter_hparams().n_channels, S = model_->adapter_hparams().group_size;
    AsrClipResult out;
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> codes = encode(request.mels, out.n_frames, progress);
    out.codes.assign(codes.begin(), codes.begin() + out.n_frames * C);
    const int64_t n_groups = int64_t(codes.size()) / C / S;
    AsrAdapterResult features = adapter_.run(codes.data(), n_groups * S, false);
    out.encode_s = seconds_since(t0);
    poll(progress, -1);

    const std::vector<int32_t> ids = prompt_rows(request, n_groups);
    out.n_groups = n_groups;
    out.n_prompt = int64_t(ids.size());
    const int64_t room = lm_.n_ctx() - out.n_prompt;
    if (room < 1) {
        fail(ErrorKind::InvalidArgument,
             strfmt("this clip needs %lld LM positions, more than the context of %lld; use shorter clips "
                    "(max_clip_s) or a larger n_ctx",
                    (long long) out.n_prompt, (long long) lm_.n_ctx()));
    }
    GenerationOptions gen = request.generation;
    gen.max_tokens = std::min(gen.max_tokens, room);

    t0 = std::chrono::steady_clock::now();
    lm_.reset();
    DecodeRows rows;
    rows.tokens = ids.data();
    rows.embeddings = features.features.data();
    rows.emb_begin = int64_t(request.prefix.size());
    rows.n_emb = n_groups;
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
