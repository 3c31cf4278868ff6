#include "sessions/text_model.h"

#include "models/mimo2_names.h"
#include "models/mimo_asr_names.h"
#include "models/mimo_tokenizer_names.h"

namespace mimo {

TextWeights::TextWeights(const std::string & path, std::shared_ptr<Backend> backend, bool load_mtp)
    : LoadedModel(open_gguf_of_arch(path, names::mimo2::kArch, "a MiMo-V2 / V2.5 MoE text GGUF",
                                    {{names::asr::kArch, "this is a MiMo-ASR file: use mimo_ggml.Session for speech "
                                                         "recognition"},
                                     {names::tok::kArch, "this is the audio-tokenizer file"}}),
                  std::move(backend), [load_mtp](const GgufFile & file, WeightStore & store) {
                      return std::make_unique<Mimo2Model>(file, store, load_mtp);
                  }) {}

}  // namespace mimo
