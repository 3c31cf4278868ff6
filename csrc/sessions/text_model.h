// The MiMo-V2 MoE text model (mimo2 GGUF) loaded once: TextWeights, shared
// read-only by any number of decode sessions (sessions/decode_session.h,
// which holds the sliding-window ring bookkeeping this model needs).
#pragma once

#include <memory>
#include <string>

#include "core/backend.h"
#include "core/loaded_model.h"
#include "models/mimo2.h"

namespace mimo {

class TextWeights : public LoadedModel<Mimo2Model> {
public:
    // load_mtp: also load the MTP blocks the file carries (speculative drafting).
    TextWeights(const std::string & path, std::shared_ptr<Backend> backend, bool load_mtp = true);
};

}  // namespace mimo
