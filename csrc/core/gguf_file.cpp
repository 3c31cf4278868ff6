#include "core/gguf_file.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sys/stat.h>

#include "core/errors.h"

namespace mimo {

std::string shape_string(int n_dims, const int64_t * ne) {
    std::string s = "(";
    for (int i = 0; i < n_dims; ++i) {
        s += std::to_string(ne[i]);
        if (i + 1 < n_dims) s += ", ";
    }
    return s + ")";
}

GgufFile::GgufFile(const std::string & path) : path_(path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        fail(ErrorKind::ModelNotFound, strfmt("model file not found: %s", path.c_str()));
    }
    if (S_ISDIR(st.st_mode)) {
        fail(ErrorKind::ModelLoad, strfmt("%s is a directory; pass the path of a .gguf file", path.c_str()));
    }
    const uint64_t file_size = uint64_t(st.st_size);
    {
        char magic[4] = {0, 0, 0, 0};
        std::ifstream in(path, std::ios::binary);
        if (!in) fail(ErrorKind::ModelLoad, strfmt("cannot open %s for reading", path.c_str()));
        in.read(magic, 4);
        if (in.gcount() != 4 || std::memcmp(magic, "GGUF", 4) != 0) {
            fail(ErrorKind::ModelLoad,
                 strfmt("%s is not a GGUF file (it does not start with the GGUF magic); "
                        "convert a Hugging Face checkpoint with `mimo-ggml convert`",
                        path.c_str()));
        }
    }
    gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
    ctx_ = gguf_init_from_file(path.c_str(), params);
    if (!ctx_) {
        fail(ErrorKind::ModelLoad,
             strfmt("%s has a corrupt or truncated GGUF header (%llu bytes); download or convert it again",
                    path.c_str(), (unsigned long long) file_size));
    }
    const size_t data_offset = gguf_get_data_offset(ctx_);
    const int64_t n = gguf_get_n_tensors(ctx_);
    tensors_.reserve(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
        TensorInfo t;
        t.name = gguf_get_tensor_name(ctx_, i);
        t.type = gguf_get_tensor_type(ctx_, i);
        const int64_t * ne = gguf_get_tensor_ne(ctx_, i);
        t.n_dims = 1;
        for (int d = 0; d < GGML_MAX_DIMS; ++d) {
            t.ne[d] = ne[d];
            if (ne[d] != 1) t.n_dims = d + 1;
        }
        t.offset = data_offset + gguf_get_tensor_offset(ctx_, i);
        t.nbytes = gguf_get_tensor_size(ctx_, i);
        if (uint64_t(t.offset) + t.nbytes > file_size) {
            const std::string msg = strfmt(
                "%s is truncated: tensor %s needs bytes up to %llu but the file has %llu; "
                "the download or conversion did not finish",
                path.c_str(), t.name.c_str(), (unsigned long long) (t.offset + t.nbytes),
                (unsigned long long) file_size);
            gguf_free(ctx_);
            ctx_ = nullptr;
            fail(ErrorKind::ModelLoad, msg);
        }
        by_name_[t.name] = tensors_.size();
        tensors_.push_back(std::move(t));
    }
}

GgufFile::~GgufFile() {
    if (ctx_) gguf_free(ctx_);
}

bool GgufFile::has_key(const std::string & key) const { return gguf_find_key(ctx_, key.c_str()) >= 0; }

int64_t GgufFile::key_id(const std::string & key) const {
    const int64_t id = gguf_find_key(ctx_, key.c_str());
    if (id < 0) {
        fail(ErrorKind::ModelLoad, strfmt("%s lacks the metadata key '%s' (architecture '%s')", path_.c_str(),
                                          key.c_str(), architecture().c_str()));
    }
    return id;
}

void GgufFile::wrong_type(const std::string & key, const char * expected) const {
    const int64_t id = gguf_find_key(ctx_, key.c_str());
    fail(ErrorKind::ModelLoad, strfmt("%s: metadata key '%s' has type %s, expected %s", path_.c_str(), key.c_str(),
                                      gguf_type_name(gguf_get_kv_type(ctx_, id)), expected));
}

static bool read_integer(const gguf_context * ctx, int64_t id, gguf_type type, const void * data, size_t i,
                         int64_t & out) {
    (void) ctx;
    (void) id;
    switch (type) {
        case GGUF_TYPE_UINT8: out = ((const uint8_t *) data)[i]; return true;
        case GGUF_TYPE_INT8: out = ((const int8_t *) data)[i]; return true;
        case GGUF_TYPE_UINT16: out = ((const uint16_t *) data)[i]; return true;
        case GGUF_TYPE_INT16: out = ((const int16_t *) data)[i]; return true;
        case GGUF_TYPE_UINT32: out = ((const uint32_t *) data)[i]; return true;
        case GGUF_TYPE_INT32: out = ((const int32_t *) data)[i]; return true;
        case GGUF_TYPE_UINT64: {
            const uint64_t v = ((const uint64_t *) data)[i];
            if (v > uint64_t(std::numeric_limits<int64_t>::max())) return false;
            out = int64_t(v);
            return true;
        }
        case GGUF_TYPE_INT64: out = ((const int64_t *) data)[i]; return true;
        case GGUF_TYPE_BOOL: out = ((const int8_t *) data)[i] ? 1 : 0; return true;
        default: return false;
    }
}

int64_t GgufFile::integer(const std::string & key) const {
    const int64_t id = key_id(key);
    int64_t v = 0;
    if (!read_integer(ctx_, id, gguf_get_kv_type(ctx_, id), gguf_get_val_data(ctx_, id), 0, v)) {
        wrong_type(key, "an integer");
    }
    return v;
}

int64_t GgufFile::integer_or(const std::string & key, int64_t fallback) const {
    return has_key(key) ? integer(key) : fallback;
}

uint32_t GgufFile::u32(const std::string & key) const {
    const int64_t v = integer(key);
    if (v < 0 || v > int64_t(UINT32_MAX)) {
        fail(ErrorKind::ModelLoad, strfmt("%s: metadata key '%s' = %lld is out of range for an unsigned 32-bit value",
                                          path_.c_str(), key.c_str(), (long long) v));
    }
    return uint32_t(v);
}

uint32_t GgufFile::u32_or(const std::string & key, uint32_t fallback) const {
    return has_key(key) ? u32(key) : fallback;
}

float GgufFile::f32(const std::string & key) const {
    const int64_t id = key_id(key);
    switch (gguf_get_kv_type(ctx_, id)) {
        case GGUF_TYPE_FLOAT32: return gguf_get_val_f32(ctx_, id);
        case GGUF_TYPE_FLOAT64: return float(gguf_get_val_f64(ctx_, id));
        default: break;
    }
    int64_t v = 0;
    if (read_integer(ctx_, id, gguf_get_kv_type(ctx_, id), gguf_get_val_data(ctx_, id), 0, v)) return float(v);
    wrong_type(key, "a number");
}

float GgufFile::f32_or(const std::string & key, float fallback) const { return has_key(key) ? f32(key) : fallback; }

bool GgufFile::boolean_or(const std::string & key, bool fallback) const {
    return has_key(key) ? integer(key) != 0 : fallback;
}

std::string GgufFile::str(const std::string & key) const {
    const int64_t id = key_id(key);
    if (gguf_get_kv_type(ctx_, id) != GGUF_TYPE_STRING) wrong_type(key, "a string");
    return gguf_get_val_str(ctx_, id);
}

std::string GgufFile::str_or(const std::string & key, const std::string & fallback) const {
    return has_key(key) ? str(key) : fallback;
}

size_t GgufFile::array_size(const std::string & key) const {
    const int64_t id = key_id(key);
    if (gguf_get_kv_type(ctx_, id) != GGUF_TYPE_ARRAY) wrong_type(key, "an array");
    return gguf_get_arr_n(ctx_, id);
}

std::vector<std::string> GgufFile::str_array(const std::string & key) const {
    const size_t n = array_size(key);
    const int64_t id = key_id(key);
    if (gguf_get_arr_type(ctx_, id) != GGUF_TYPE_STRING) wrong_type(key, "an array of strings");
    std::vector<std::string> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) out.emplace_back(gguf_get_arr_str(ctx_, id, i));
    return out;
}

std::vector<int64_t> GgufFile::int_array(const std::string & key) const {
    const size_t n = array_size(key);
    const int64_t id = key_id(key);
    const gguf_type et = gguf_get_arr_type(ctx_, id);
    const void * data = n ? gguf_get_arr_data(ctx_, id) : nullptr;
    std::vector<int64_t> out(n);
    for (size_t i = 0; i < n; ++i) {
        if (!read_integer(ctx_, id, et, data, i, out[i])) wrong_type(key, "an array of integers");
    }
    return out;
}

const TensorInfo * GgufFile::find_tensor(const std::string & name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace mimo
