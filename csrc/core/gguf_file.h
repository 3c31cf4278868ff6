// A GGUF file opened for reading. The constructor reads the whole header
// (key/value metadata and tensor table) with a bounded reader of its own —
// every count and length is checked against the bytes left in the file
// before anything is allocated — and refuses a bad file with a ModelLoadError
// that says what is wrong (duplicate key, tensor out of the file's bounds,
// unknown type, ...). ggml's own reader then parses the file too, as a
// cross-check. Typed metadata getters check each key's type (and array-ness)
// before reading it and raise ModelLoadError naming the file, the key, the
// expected and the found type; strings are checked to be valid UTF-8. Tensor
// data is read later by WeightStore.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "ggml.h"
#include "gguf.h"

namespace mimo {

// Upper bounds for hyper-parameters read from files: far above every real
// MiMo / Qwen2 model, far below what would let a corrupt value size an
// allocation (a count is also checked against the tensors present).
namespace limits {
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxWidth = 1 << 20;    // hidden / model widths
inline constexpr int64_t kMaxFfn = 1 << 22;      // feed-forward widths
inline constexpr int64_t kMaxHeads = 4096;
inline constexpr int64_t kMaxHeadDim = 4096;
inline constexpr int64_t kMaxVocab = 1 << 24;    // text vocabularies, codebook sizes
inline constexpr int64_t kMaxExperts = 4096;
inline constexpr int64_t kMaxContext = 1 << 24;  // trained context lengths, windows
inline constexpr float kMaxRopeTheta = 1e12f;
inline constexpr float kMaxNormEps = 1.0f;
}  // namespace limits

struct TensorInfo {
    std::string name;
    ggml_type type;
    int n_dims;
    int64_t ne[GGML_MAX_DIMS];
    size_t offset;  // absolute byte offset of the data in the file
    size_t nbytes;
};

// One metadata value as stored in the file. Numeric payloads are kept raw
// (little-endian, n elements of the element type), strings decoded.
struct GgufValue {
    gguf_type type = GGUF_TYPE_UINT8;  // the element type for arrays
    bool is_array = false;
    uint64_t n = 1;                    // elements (1 for a scalar)
    std::vector<uint8_t> raw;          // numeric / bool elements
    std::vector<std::string> strs;     // string elements
};

class GgufFile {
public:
    explicit GgufFile(const std::string & path);
    GgufFile(const GgufFile &) = delete;
    GgufFile & operator=(const GgufFile &) = delete;

    const std::string & path() const { return path_; }
    uint64_t file_size() const { return file_size_; }
    uint32_t version() const { return version_; }
    size_t alignment() const { return alignment_; }
    // general.architecture ('' if absent); ModelLoadError if not a valid string
    std::string architecture() const { return str_or("general.architecture", ""); }

    bool has_key(const std::string & key) const { return kv_.count(key) != 0; }
    bool is_array(const std::string & key) const;  // false if absent
    // "u32", "str", "array[3] of i32" — for messages
    std::string type_description(const std::string & key) const;

    // Integer getters accept a scalar of any integer GGUF type whose value
    // fits; anything else (a float, a string, a bool, an array — even of one
    // element) raises ModelLoadError naming the key and both types.
    int64_t integer(const std::string & key) const;
    int64_t integer_or(const std::string & key, int64_t fallback) const;
    // ... and the value must lie in [lo, hi], else ModelLoadError naming the range
    int64_t integer_in(const std::string & key, int64_t lo, int64_t hi) const;
    int64_t integer_in_or(const std::string & key, int64_t fallback, int64_t lo, int64_t hi) const;
    uint32_t u32(const std::string & key) const;
    uint32_t u32_or(const std::string & key, uint32_t fallback) const;
    // A finite number (F32, F64 or an integer); NaN and infinities are refused.
    float f32(const std::string & key) const;
    float f32_or(const std::string & key, float fallback) const;
    // A finite number with lo < v <= hi (lo_open) or lo <= v <= hi.
    float f32_in(const std::string & key, float lo, float hi, bool lo_open = true) const;
    float f32_in_or(const std::string & key, float fallback, float lo, float hi, bool lo_open = true) const;
    // BOOL, or an integer 0 / 1
    bool boolean_or(const std::string & key, bool fallback) const;
    std::string str(const std::string & key) const;
    std::string str_or(const std::string & key, const std::string & fallback) const;
    std::vector<std::string> str_array(const std::string & key) const;
    std::vector<int64_t> int_array(const std::string & key) const;  // integer or bool elements
    size_t array_size(const std::string & key) const;

    // every key in file order (the info command lists them)
    const std::vector<std::string> & keys() const { return key_order_; }
    const GgufValue * value(const std::string & key) const;  // nullptr if absent

    const TensorInfo * find_tensor(const std::string & name) const;  // nullptr if absent
    const std::vector<TensorInfo> & tensors() const { return tensors_; }
    // Blocks named by a printf pattern with one %d (e.g. "blk.%d."): one more
    // than the highest index i for which some tensor name starts with the
    // pattern's expansion; 0 if none. Used to check layer counts against the
    // tensors present before anything is sized by them.
    int64_t blocks_present(const char * pattern) const;
    // ModelLoadError unless n blocks (the value of `key`) are present
    void check_blocks(const std::string & key, int64_t n, const char * pattern) const;

    // The tokenizer vocabulary (tokenizer.ggml.tokens), where the file has
    // one, must be an array of strings with at most n_rows entries (the rows
    // of the embedding and the head): an id past them would index nothing.
    void check_vocabulary(int64_t n_rows) const;

    [[noreturn]] void fail_key(const std::string & key, const std::string & what) const;

private:
    const GgufValue & get(const std::string & key) const;  // throws if missing
    [[noreturn]] void wrong_type(const std::string & key, const char * expected) const;
    void cross_check_with_ggml() const;

    std::string path_;
    uint64_t file_size_ = 0;
    uint32_t version_ = 0;
    size_t alignment_ = GGUF_DEFAULT_ALIGNMENT;
    std::unordered_map<std::string, GgufValue> kv_;
    std::vector<std::string> key_order_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, size_t> by_name_;
};

// "(4096, 151680)" — ggml order, for error messages
std::string shape_string(int n_dims, const int64_t * ne);

}  // namespace mimo
