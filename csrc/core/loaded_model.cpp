#include "core/loaded_model.h"

#include "core/errors.h"

namespace mimo {

std::unique_ptr<GgufFile> open_gguf_of_arch(const std::string & path, const char * arch, const char * what,
                                            std::initializer_list<WrongFileHint> hints) {
    auto file = std::make_unique<GgufFile>(path);
    const std::string found = file->architecture();
    if (found == arch) return file;
    std::string hint;
    for (const WrongFileHint & h : hints) {
        if (found == h.arch) hint = strfmt(" (%s)", h.hint);
    }
    fail(ErrorKind::UnsupportedModel, strfmt("%s has architecture '%s', expected '%s' (%s)%s", path.c_str(),
                                             found.empty() ? "<none>" : found.c_str(), arch, what, hint.c_str()));
}

}  // namespace mimo
