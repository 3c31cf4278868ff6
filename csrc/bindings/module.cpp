// The _core extension module: registration only; each bound class or
// function group lives in its own file.
#include "bindings/common.h"

PYBIND11_MODULE(_core, m) {
    m.doc() = "mimo-ggml native core (ggml graphs for MiMo models)";
    mimo::bindings::bind_errors(m);
    mimo::bindings::bind_system(m);
    mimo::bindings::bind_rpc(m);
    mimo::bindings::bind_language_model(m);
    mimo::bindings::bind_quantize(m);
    mimo::bindings::bind_gguf_metadata(m);
    mimo::bindings::bind_audio_tokenizer(m);
    mimo::bindings::bind_asr_adapter(m);
    mimo::bindings::bind_text_model(m);
    mimo::bindings::bind_decode_session(m);
    mimo::bindings::bind_asr_model(m);
}
