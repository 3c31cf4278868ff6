// A GGUF file opened for reading: validated up front (exists, is GGUF, not
// truncated), typed metadata getters that raise ModelLoadError naming the
// key, and tensor lookups. Tensor data is read later by WeightStore.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "ggml.h"
#include "gguf.h"

namespace mimo {

struct TensorInfo {
    std::string name;
    ggml_type type;
    int n_dims;
    int64_t ne[GGML_MAX_DIMS];
    size_t offset;  // absolute byte offset of the data in the file
    size_t nbytes;
};

class GgufFile {
public:
    explicit GgufFile(const std::string & path);
    ~GgufFile();
    GgufFile(const GgufFile &) = delete;
    GgufFile & operator=(const GgufFile &) = delete;

    const std::string & path() const { return path_; }
    std::string architecture() const { return str_or("general.architecture", ""); }

    bool has_key(const std::string & key) const;
    // Integer getters accept any integer-typed value that fits; other types
    // raise ModelLoadError naming the key and both types.
    int64_t integer(const std::string & key) const;
    int64_t integer_or(const std::string & key, int64_t fallback) const;
    uint32_t u32(const std::string & key) const;
    uint32_t u32_or(const std::string & key, uint32_t fallback) const;
    float f32(const std::string & key) const;
    float f32_or(const std::string & key, float fallback) const;
    bool boolean_or(const std::string & key, bool fallback) const;
    std::string str(const std::string & key) const;
    std::string str_or(const std::string & key, const std::string & fallback) const;
    std::vector<std::string> str_array(const std::string & key) const;
    std::vector<int64_t> int_array(const std::string & key) const;  // integer or bool elements
    size_t array_size(const std::string & key) const;

    const TensorInfo * find_tensor(const std::string & name) const;  // nullptr if absent
    const std::vector<TensorInfo> & tensors() const { return tensors_; }

private:
    int64_t key_id(const std::string & key) const;  // throws if missing
    [[noreturn]] void wrong_type(const std::string & key, const char * expected) const;

    std::string path_;
    gguf_context * ctx_ = nullptr;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, size_t> by_name_;
};

// "(4096, 151680)" — ggml order, for error messages
std::string shape_string(int n_dims, const int64_t * ne);

}  // namespace mimo
