// Model weights: a model declares each tensor it needs (name, expected
// shape, where it lives), the store checks them against the GGUF file and
// then allocates backend buffers and reads the data once. Weights are
// immutable afterwards and shared by every session of the model.
#pragma once

#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/gguf_file.h"
#include "ggml.h"

namespace mimo {

enum class Placement {
    Device,        // the main device's default buffer type
    Host,          // always CPU memory (row-gathered tables on GPU runs)
    MatmulWeight,  // the main device; on CPU, a repacked layout where ggml has one
};

// What the graph does with a tensor, which decides the tensor types it may
// have. The store checks every declared tensor's type against its role at
// declaration (ggml_backend_dev_supports_op on the real op, plus the CPU's
// kernel table on CPU), so a type the op cannot run is refused at load,
// naming the tensor, its type and the types that would do.
enum class Role {
    Matmul,         // the weight of a mul_mat with F32 activations (placement: MatmulWeight)
    MatmulExperts,  // stacked expert weights of a mul_mat_id (placement: Device)
    Rows,           // a table gathered with get_rows (placement: Host)
    Conv,           // a conv kernel multiplied as a matrix: F32 / F16 / BF16 (placement: Device)
    Float,          // converted to F32 at load: norms, biases, sinks, router, codebooks (placement: Device)
};

struct WeightOptions {
    // the placement and conversion that go with each role
    WeightOptions(Role r)  // NOLINT: implicit, so store.require(name, shape, Role::Matmul) reads well
        : role(r),
          placement(r == Role::Matmul ? Placement::MatmulWeight : r == Role::Rows ? Placement::Host : Placement::Device),
          as_f32(r == Role::Float) {}
    Role role;
    Placement placement;
    bool as_f32;  // store as F32 whatever the file type
};

class WeightStore {
public:
    WeightStore(std::shared_ptr<Backend> backend, const GgufFile & file);
    ~WeightStore();
    WeightStore(const WeightStore &) = delete;
    WeightStore & operator=(const WeightStore &) = delete;

    // Declares a tensor; throws ModelLoadError if it is missing, if its shape
    // differs from ne (ggml order, fastest dimension first), or if its type
    // does not suit its role.
    ggml_tensor * require(const std::string & name, std::initializer_list<int64_t> ne, WeightOptions opt);
    // Same, but returns nullptr when the file has no such tensor.
    ggml_tensor * optional(const std::string & name, std::initializer_list<int64_t> ne, WeightOptions opt);
    bool file_has(const std::string & name) const { return file_.find_tensor(name) != nullptr; }
    const TensorInfo * file_tensor(const std::string & name) const { return file_.find_tensor(name); }

    // Allocates every declared tensor and reads its data from the file.
    void load();
    size_t bytes() const;
    // weight bytes per device name ("CPU", "RPC0", ...): where a split put the layers
    std::map<std::string, size_t> bytes_by_device() const;

    Backend & backend() const { return *backend_; }

    // Declares a stack of n_layer layers whose tensors are named by
    // layer_fmt ("blk.%d.", "model.layers.%d." + suffix), before they are
    // declared: with several devices each layer's tensors go to that layer's
    // device of the Backend's split. Tensors of no stack stay on the first device.
    void layer_stack(const char * layer_fmt, int64_t n_layer);
    // the device a tensor of this name lives on
    ggml_backend_dev_t device_for(const std::string & name) const;

private:
    struct Pending {
        ggml_tensor * tensor;
        const TensorInfo * info;
    };
    ggml_context * context_for(ggml_backend_buffer_type_t buft);
    ggml_backend_buffer_type_t choose_buffer_type(const TensorInfo & info, Placement p, ggml_backend_dev_t dev);
    ggml_backend_buffer_t alloc_anonymous(ggml_context * ctx);
    ggml_tensor * declare(const TensorInfo & info, std::initializer_list<int64_t> ne, WeightOptions opt);
    // whether a tensor of this type and shape suits the role in buffer type buft
    bool type_suits(ggml_type type, const int64_t * ne, int n_dims, const WeightOptions & opt,
                    ggml_backend_buffer_type_t buft) const;
    ggml_backend_dev_t device_of(ggml_backend_buffer_type_t buft) const;
    void check_type(const TensorInfo & info, const WeightOptions & opt, ggml_backend_buffer_type_t buft) const;

    std::shared_ptr<Backend> backend_;
    const GgufFile & file_;
    std::map<ggml_backend_buffer_type_t, ggml_context *> contexts_;
    std::vector<ggml_backend_buffer_t> buffers_;
    std::vector<std::pair<void *, size_t>> mappings_;  // anonymous memory behind host buffers
    std::vector<Pending> pending_;
    struct LayerStack {
        std::string prefix, suffix;  // the layer format around its "%d"
        int64_t n_layer;
    };
    std::vector<LayerStack> stacks_;
    bool loaded_ = false;
};

}  // namespace mimo
