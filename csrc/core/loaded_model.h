// A model file loaded once: the GGUF, its weight store and the model object
// built over them. Immutable after construction and shared (read-only) by
// every session that runs it; the per-model classes in sessions/ derive
// from LoadedModel<Model> and only say which architecture and model they load.
#pragma once

#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "core/backend.h"
#include "core/gguf_file.h"
#include "core/weights.h"

namespace mimo {

// Another architecture a user may pass by mistake, and what to tell them.
struct WrongFileHint {
    const char * arch;
    const char * hint;
};

// Opens `path` and checks that it holds architecture `arch` (described to the
// user as `what`); otherwise UnsupportedModel, with the hint for a known
// other architecture appended.
std::unique_ptr<GgufFile> open_gguf_of_arch(const std::string & path, const char * arch, const char * what,
                                            std::initializer_list<WrongFileHint> hints = {});

template <class Model>
class LoadedModel {
public:
    // build(file, store) constructs the model, which declares its tensors;
    // the store then allocates them and reads their data.
    template <class Build>
    LoadedModel(std::unique_ptr<GgufFile> file, std::shared_ptr<Backend> backend, Build && build)
        : backend_(std::move(backend)), file_(std::move(file)) {
        store_ = std::make_unique<WeightStore>(backend_, *file_);
        model_ = build(*file_, *store_);
        store_->load();
    }
    LoadedModel(const LoadedModel &) = delete;
    LoadedModel & operator=(const LoadedModel &) = delete;

    const Model & model() const { return *model_; }
    const GgufFile & file() const { return *file_; }
    const std::shared_ptr<Backend> & backend() const { return backend_; }
    size_t bytes() const { return store_->bytes(); }
    std::map<std::string, size_t> bytes_by_device() const { return store_->bytes_by_device(); }

protected:
    std::shared_ptr<Backend> backend_;
    std::unique_ptr<GgufFile> file_;
    std::unique_ptr<WeightStore> store_;
    std::unique_ptr<Model> model_;
};

}  // namespace mimo
