#include "core/gguf_file.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <sys/stat.h>

#include "core/errors.h"

namespace mimo {

namespace {

// ggml's own limits on what its reader accepts (gguf.cpp): past them it
// refuses the file, so we say so first, in words
constexpr uint64_t kMaxStringBytes = 64ull << 20;
constexpr uint64_t kMaxArrayElements = 64ull << 20;
constexpr uint64_t kMaxAlignment = 1ull << 20;
// the fewest bytes a metadata entry / tensor info can take in the file
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;           // key length, 1-byte key, type, u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 4 + 8;  // name length, 1-byte name, n_dims, type, offset

const char * type_name(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8: return "u8";
        case GGUF_TYPE_INT8: return "i8";
        case GGUF_TYPE_UINT16: return "u16";
        case GGUF_TYPE_INT16: return "i16";
        case GGUF_TYPE_UINT32: return "u32";
        case GGUF_TYPE_INT32: return "i32";
        case GGUF_TYPE_FLOAT32: return "f32";
        case GGUF_TYPE_BOOL: return "bool";
        case GGUF_TYPE_STRING: return "str";
        case GGUF_TYPE_ARRAY: return "array";
        case GGUF_TYPE_UINT64: return "u64";
        case GGUF_TYPE_INT64: return "i64";
        case GGUF_TYPE_FLOAT64: return "f64";
        default: return "unknown";
    }
}

// bytes of one element; 0 for strings and arrays
size_t type_size(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8:
        case GGUF_TYPE_INT8:
        case GGUF_TYPE_BOOL: return 1;
        case GGUF_TYPE_UINT16:
        case GGUF_TYPE_INT16: return 2;
        case GGUF_TYPE_UINT32:
        case GGUF_TYPE_INT32:
        case GGUF_TYPE_FLOAT32: return 4;
        case GGUF_TYPE_UINT64:
        case GGUF_TYPE_INT64:
        case GGUF_TYPE_FLOAT64: return 8;
        default: return 0;
    }
}

bool is_integer_type(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8:
        case GGUF_TYPE_INT8:
        case GGUF_TYPE_UINT16:
        case GGUF_TYPE_INT16:
        case GGUF_TYPE_UINT32:
        case GGUF_TYPE_INT32:
        case GGUF_TYPE_UINT64:
        case GGUF_TYPE_INT64: return true;
        default: return false;
    }
}

template <class T>
T load(const uint8_t * p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

// Element i of an integer (or bool) payload; false if it does not fit int64.
bool integer_at(gguf_type t, const std::vector<uint8_t> & raw, size_t i, int64_t & out) {
    const uint8_t * p = raw.data() + i * type_size(t);
    switch (t) {
        case GGUF_TYPE_UINT8: out = load<uint8_t>(p); return true;
        case GGUF_TYPE_INT8: out = load<int8_t>(p); return true;
        case GGUF_TYPE_BOOL: out = load<int8_t>(p) != 0 ? 1 : 0; return true;
        case GGUF_TYPE_UINT16: out = load<uint16_t>(p); return true;
        case GGUF_TYPE_INT16: out = load<int16_t>(p); return true;
        case GGUF_TYPE_UINT32: out = load<uint32_t>(p); return true;
        case GGUF_TYPE_INT32: out = load<int32_t>(p); return true;
        case GGUF_TYPE_INT64: out = load<int64_t>(p); return true;
        case GGUF_TYPE_UINT64: {
            const uint64_t v = load<uint64_t>(p);
            if (v > uint64_t(std::numeric_limits<int64_t>::max())) return false;
            out = int64_t(v);
            return true;
        }
        default: return false;
    }
}

std::string describe(const GgufValue & v) {
    if (!v.is_array) return type_name(v.type);
    return strfmt("array[%llu] of %s", (unsigned long long) v.n, type_name(v.type));
}

// The bounded reader of the header: every read is checked against the bytes
// left in the file, and `where` says what is being read, for the message.
class HeaderReader {
public:
    HeaderReader(const std::string & path, uint64_t size) : path_(path), size_(size) {
        f_ = std::fopen(path.c_str(), "rb");
        if (!f_) fail(ErrorKind::ModelLoad, strfmt("cannot open %s for reading", path.c_str()));
    }
    ~HeaderReader() {
        if (f_) std::fclose(f_);
    }
    HeaderReader(const HeaderReader &) = delete;
    HeaderReader & operator=(const HeaderReader &) = delete;

    uint64_t pos() const { return pos_; }
    uint64_t left() const { return size_ - pos_; }
    std::string where;  // "the header", "metadata entry 3 ('general.name')", ...

    [[noreturn]] void corrupt(const std::string & what) const {
        fail(ErrorKind::ModelLoad, strfmt("%s has a corrupt or truncated GGUF header: %s", path_.c_str(), what.c_str()));
    }
    [[noreturn]] void truncated() const {
        corrupt(strfmt("the file (%llu bytes) ends inside %s", (unsigned long long) size_, where.c_str()));
    }

    void bytes(void * dst, uint64_t n) {
        if (n > left()) truncated();
        if (n && std::fread(dst, 1, size_t(n), f_) != size_t(n)) {
            fail(ErrorKind::ModelLoad, strfmt("%s: read error at byte %llu", path_.c_str(), (unsigned long long) pos_));
        }
        pos_ += n;
    }
    template <class T>
    T scalar() {
        T v;
        bytes(&v, sizeof(T));
        return v;
    }
    std::string string(const char * what) {
        const uint64_t n = scalar<uint64_t>();
        if (n > left()) {
            corrupt(strfmt("%s of %s is said to be %llu bytes long, past the end of the file (%llu bytes left)", what,
                           where.c_str(), (unsigned long long) n, (unsigned long long) left()));
        }
        if (n > kMaxStringBytes) {
            corrupt(strfmt("%s of %s is %llu bytes long, more than ggml's limit of %llu", what, where.c_str(),
                           (unsigned long long) n, (unsigned long long) kMaxStringBytes));
        }
        std::string s(size_t(n), '\0');
        bytes(s.data(), n);
        return s;
    }

private:
    std::string path_;
    uint64_t size_;
    uint64_t pos_ = 0;
    FILE * f_ = nullptr;
};

}  // namespace

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
    if (!S_ISREG(st.st_mode)) {  // a FIFO or device would block or never end
        fail(ErrorKind::ModelLoad, strfmt("%s is not a regular file (a pipe, socket or device); pass the path of a "
                                          ".gguf file",
                                          path.c_str()));
    }
    file_size_ = uint64_t(st.st_size);
    HeaderReader r(path, file_size_);
    auto not_gguf = [&]() {
        fail(ErrorKind::ModelLoad, strfmt("%s is not a GGUF file (it does not start with the GGUF magic); "
                                          "convert a Hugging Face checkpoint with `mimo-ggml convert`",
                                          path.c_str()));
    };
    if (file_size_ < 4) not_gguf();
    char magic[4];
    r.where = "the header";
    r.bytes(magic, 4);
    if (std::memcmp(magic, "GGUF", 4) != 0) not_gguf();

    // header: version, tensor count, metadata count
    version_ = r.scalar<uint32_t>();
    if (version_ != 2 && version_ != 3) {
        if (version_ != 0 && (version_ & 0xFFFFu) == 0) {
            fail(ErrorKind::UnsupportedModel,
                 strfmt("%s: GGUF version field reads %u, which is what a file of the other byte order looks like; "
                        "only little-endian GGUF files are supported",
                        path.c_str(), version_));
        }
        if (version_ == 1 || version_ > 3) {
            fail(ErrorKind::UnsupportedModel, strfmt("%s is GGUF version %u; versions 2 and 3 are supported",
                                                     path.c_str(), version_));
        }
        r.corrupt(strfmt("version %u is not a GGUF version", version_));
    }
    const int64_t n_tensors = r.scalar<int64_t>();
    const int64_t n_kv = r.scalar<int64_t>();
    if (n_tensors < 0 || n_kv < 0 ||
        uint64_t(n_kv) > r.left() / kMinKvBytes || uint64_t(n_tensors) > r.left() / kMinTensorInfoBytes ||
        uint64_t(n_kv) * kMinKvBytes + uint64_t(n_tensors) * kMinTensorInfoBytes > r.left()) {
        r.corrupt(strfmt("it claims %lld tensors and %lld metadata entries, more than the %llu bytes after the "
                         "header can describe",
                         (long long) n_tensors, (long long) n_kv, (unsigned long long) r.left()));
    }

    // metadata
    key_order_.reserve(size_t(n_kv));
    for (int64_t i = 0; i < n_kv; ++i) {
        r.where = strfmt("metadata entry %lld", (long long) i);
        std::string key = r.string("the key");
        if (key.empty()) r.corrupt(strfmt("metadata entry %lld has an empty key", (long long) i));
        r.where = strfmt("metadata entry %lld ('%s')", (long long) i, printable(key).c_str());
        if (kv_.count(key)) {
            size_t first = 0;
            while (key_order_[first] != key) ++first;
            fail(ErrorKind::ModelLoad, strfmt("%s: duplicate metadata key '%s' (entries %zu and %lld)", path.c_str(),
                                              printable(key).c_str(), first, (long long) i));
        }
        GgufValue v;
        const int32_t type = r.scalar<int32_t>();
        int32_t elem = type;
        if (type == GGUF_TYPE_ARRAY) {
            v.is_array = true;
            elem = r.scalar<int32_t>();
            v.n = r.scalar<uint64_t>();
        }
        if (elem < 0 || elem >= GGUF_TYPE_COUNT || elem == GGUF_TYPE_ARRAY) {
            fail(ErrorKind::ModelLoad,
                 strfmt("%s: metadata key '%s' has unknown GGUF value type %d%s", path.c_str(), printable(key).c_str(),
                        int(elem), v.is_array ? " (as an array element type)" : ""));
        }
        v.type = gguf_type(elem);
        if (v.is_array) {
            const uint64_t min_elem = v.type == GGUF_TYPE_STRING ? 8 : type_size(v.type);
            if (v.n > r.left() / min_elem) {
                r.corrupt(strfmt("metadata key '%s' claims an array of %llu %s elements, more than the %llu bytes "
                                 "left in the file can hold",
                                 printable(key).c_str(), (unsigned long long) v.n, type_name(v.type),
                                 (unsigned long long) r.left()));
            }
            if (v.n > kMaxArrayElements) {
                r.corrupt(strfmt("metadata key '%s' has an array of %llu elements, more than ggml's limit of %llu",
                                 printable(key).c_str(), (unsigned long long) v.n,
                                 (unsigned long long) kMaxArrayElements));
            }
        }
        if (v.type == GGUF_TYPE_STRING) {
            v.strs.reserve(size_t(v.n));
            for (uint64_t j = 0; j < v.n; ++j) v.strs.push_back(r.string(v.is_array ? "a string element" : "the string"));
        } else {
            v.raw.resize(size_t(v.n) * type_size(v.type));
            r.bytes(v.raw.data(), v.raw.size());
        }
        key_order_.push_back(key);
        kv_.emplace(std::move(key), std::move(v));
    }

    // general.alignment: ggml reads it as a u32 and needs a power of two
    if (const GgufValue * a = value(GGUF_KEY_GENERAL_ALIGNMENT)) {
        if (a->is_array || a->type != GGUF_TYPE_UINT32) wrong_type(GGUF_KEY_GENERAL_ALIGNMENT, "u32");
        const uint32_t al = load<uint32_t>(a->raw.data());
        if (al == 0 || (al & (al - 1)) != 0 || al > kMaxAlignment) {
            fail(ErrorKind::ModelLoad, strfmt("%s: general.alignment = %u; it must be a power of two up to %llu",
                                              path.c_str(), al, (unsigned long long) kMaxAlignment));
        }
        alignment_ = al;
    }

    // tensor table
    tensors_.reserve(size_t(n_tensors));
    for (int64_t i = 0; i < n_tensors; ++i) {
        r.where = strfmt("tensor info %lld", (long long) i);
        TensorInfo t;
        t.name = r.string("the name");
        const std::string pname = printable(t.name);
        if (t.name.empty()) r.corrupt(strfmt("tensor %lld has an empty name", (long long) i));
        if (t.name.find('\0') != std::string::npos) {  // ggml would cut the name there
            fail(ErrorKind::ModelLoad, strfmt("%s: tensor name '%s' contains a NUL byte", path.c_str(), pname.c_str()));
        }
        if (t.name.size() >= GGML_MAX_NAME) {
            fail(ErrorKind::ModelLoad, strfmt("%s: tensor name '%s' is %zu bytes long; ggml allows at most %d",
                                              path.c_str(), pname.c_str(), t.name.size(), GGML_MAX_NAME - 1));
        }
        if (by_name_.count(t.name)) {
            fail(ErrorKind::ModelLoad, strfmt("%s: duplicate tensor '%s' (tensors %zu and %lld)", path.c_str(),
                                              pname.c_str(), by_name_[t.name], (long long) i));
        }
        r.where = strfmt("tensor info %lld ('%s')", (long long) i, pname.c_str());
        const uint32_t n_dims = r.scalar<uint32_t>();
        if (n_dims > GGML_MAX_DIMS) {
            fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' has %u dimensions; ggml tensors have at most %d",
                                              path.c_str(), pname.c_str(), n_dims, GGML_MAX_DIMS));
        }
        int64_t ne[GGML_MAX_DIMS] = {1, 1, 1, 1};
        for (uint32_t d = 0; d < n_dims; ++d) ne[d] = r.scalar<int64_t>();
        for (int d = 0; d < GGML_MAX_DIMS; ++d) {
            if (ne[d] < 0) {
                fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' has a negative dimension %s", path.c_str(),
                                                  pname.c_str(), shape_string(int(n_dims), ne).c_str()));
            }
        }
        uint64_t n_elem = 1;
        for (int d = 0; d < GGML_MAX_DIMS; ++d) {
            if (ne[d] != 0 && n_elem > uint64_t(std::numeric_limits<int64_t>::max()) / uint64_t(ne[d])) {
                fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' has shape %s, too many elements to address",
                                                  path.c_str(), pname.c_str(), shape_string(int(n_dims), ne).c_str()));
            }
            n_elem *= uint64_t(ne[d]);
        }
        const int32_t type = r.scalar<int32_t>();
        const ggml_type_traits * traits =
            (type >= 0 && type < GGML_TYPE_COUNT) ? ggml_get_type_traits(ggml_type(type)) : nullptr;
        if (!traits || traits->blck_size <= 0 || traits->type_size == 0) {
            fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' has unknown ggml type %d (this build knows 0..%d, "
                                              "less the removed ones)",
                                              path.c_str(), pname.c_str(), int(type), GGML_TYPE_COUNT - 1));
        }
        t.type = ggml_type(type);
        if (ne[0] % traits->blck_size != 0) {
            fail(ErrorKind::ModelLoad,
                 strfmt("%s: tensor '%s' of type %s has rows of %lld elements, not a multiple of its block size %lld",
                        path.c_str(), pname.c_str(), ggml_type_name(t.type), (long long) ne[0],
                        (long long) traits->blck_size));
        }
        const uint64_t blocks = n_elem / uint64_t(traits->blck_size);
        if (blocks > uint64_t(std::numeric_limits<int64_t>::max()) / traits->type_size) {
            fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' with shape %s is too large to address", path.c_str(),
                                              pname.c_str(), shape_string(int(n_dims), ne).c_str()));
        }
        t.nbytes = size_t(blocks * traits->type_size);
        t.offset = size_t(r.scalar<uint64_t>());  // relative for now
        t.n_dims = 1;
        for (int d = 0; d < GGML_MAX_DIMS; ++d) {
            t.ne[d] = ne[d];
            if (ne[d] != 1) t.n_dims = d + 1;
        }
        by_name_[t.name] = tensors_.size();
        tensors_.push_back(std::move(t));
    }

    // the data section starts at the next multiple of the alignment; ggml
    // wants the tensors there back to back, in table order, each padded
    const uint64_t align = alignment_;
    const uint64_t data_offset = (r.pos() + align - 1) / align * align;
    if (!tensors_.empty() && data_offset > file_size_) {
        fail(ErrorKind::ModelLoad, strfmt("%s is truncated: its tensor data would start at byte %llu but the file "
                                          "has %llu; the download or conversion did not finish",
                                          path.c_str(), (unsigned long long) data_offset,
                                          (unsigned long long) file_size_));
    }
    uint64_t expected = 0;
    for (size_t i = 0; i < tensors_.size(); ++i) {
        TensorInfo & t = tensors_[i];
        const std::string pname = printable(t.name);
        const uint64_t rel = t.offset;
        if (rel != expected) {
            std::string why;
            if (rel % align != 0) {
                why = strfmt("is not a multiple of the alignment %llu", (unsigned long long) align);
            } else if (rel < expected) {
                why = i ? strfmt("overlaps tensor '%s', which ends at %llu", printable(tensors_[i - 1].name).c_str(),
                                 (unsigned long long) (tensors_[i - 1].offset - data_offset + tensors_[i - 1].nbytes))
                        : std::string("overlaps nothing but is not 0");
            } else {
                why = strfmt("leaves a gap after the previous tensor, which ends at %llu", (unsigned long long) expected);
            }
            fail(ErrorKind::ModelLoad,
                 strfmt("%s: tensor '%s' has data offset %llu, which %s (GGUF tensors lie back to back in table "
                        "order; %llu was expected)",
                        path.c_str(), pname.c_str(), (unsigned long long) rel, why.c_str(),
                        (unsigned long long) expected));
        }
        const uint64_t padded = (uint64_t(t.nbytes) + align - 1) / align * align;
        if (padded < t.nbytes || expected > std::numeric_limits<uint64_t>::max() - padded - data_offset) {
            fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' overflows the address space", path.c_str(), pname.c_str()));
        }
        t.offset = size_t(data_offset + rel);
        if (uint64_t(t.offset) + t.nbytes > file_size_) {
            fail(ErrorKind::ModelLoad,
                 strfmt("%s is truncated: tensor %s needs bytes %llu..%llu but the file has %llu; the download or "
                        "conversion did not finish (or the tensor's shape or type is corrupt)",
                        path.c_str(), pname.c_str(), (unsigned long long) t.offset,
                        (unsigned long long) (t.offset + t.nbytes), (unsigned long long) file_size_));
        }
        expected += padded;
    }
    cross_check_with_ggml();
}

// ggml's reader must agree with ours: it is what llama.cpp and gguf-py
// users trust, and a file it refuses is not one to run.
void GgufFile::cross_check_with_ggml() const {
    gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
    gguf_context * ctx = gguf_init_from_file(path_.c_str(), params);
    if (!ctx) {
        fail(ErrorKind::ModelLoad, strfmt("%s: ggml's GGUF reader refuses the file although its header is well "
                                          "formed (%llu bytes); download or convert it again",
                                          path_.c_str(), (unsigned long long) file_size_));
    }
    std::unique_ptr<gguf_context, void (*)(gguf_context *)> guard(ctx, gguf_free);
    bool same = gguf_get_n_tensors(ctx) == int64_t(tensors_.size()) && gguf_get_n_kv(ctx) == int64_t(kv_.size());
    const size_t data_offset = gguf_get_data_offset(ctx);
    for (size_t i = 0; same && i < tensors_.size(); ++i) {
        const TensorInfo & t = tensors_[i];
        same = t.name == gguf_get_tensor_name(ctx, int64_t(i)) && t.type == gguf_get_tensor_type(ctx, int64_t(i)) &&
               t.offset == data_offset + gguf_get_tensor_offset(ctx, int64_t(i)) &&
               t.nbytes == gguf_get_tensor_size(ctx, int64_t(i));
    }
    if (!same) {
        fail(ErrorKind::ModelLoad, strfmt("%s: ggml reads a different tensor table from this file than mimo-ggml "
                                          "does; the file is malformed",
                                          path_.c_str()));
    }
}

const GgufValue * GgufFile::value(const std::string & key) const {
    const auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
}

const GgufValue & GgufFile::get(const std::string & key) const {
    const GgufValue * v = value(key);
    if (!v) {
        fail(ErrorKind::ModelLoad, strfmt("%s lacks the metadata key '%s' (architecture '%s')", path_.c_str(),
                                          key.c_str(), printable(str_or("general.architecture", "")).c_str()));
    }
    return *v;
}

bool GgufFile::is_array(const std::string & key) const {
    const GgufValue * v = value(key);
    return v && v->is_array;
}

std::string GgufFile::type_description(const std::string & key) const {
    const GgufValue * v = value(key);
    return v ? describe(*v) : std::string("absent");
}

void GgufFile::fail_key(const std::string & key, const std::string & what) const {
    fail(ErrorKind::ModelLoad, strfmt("%s: metadata key '%s' %s", path_.c_str(), key.c_str(), what.c_str()));
}

void GgufFile::wrong_type(const std::string & key, const char * expected) const {
    fail_key(key, strfmt("has type %s, expected %s", type_description(key).c_str(), expected));
}

int64_t GgufFile::integer(const std::string & key) const {
    const GgufValue & v = get(key);
    if (v.is_array || !is_integer_type(v.type)) wrong_type(key, "an integer (u8..i64)");
    int64_t out = 0;
    if (!integer_at(v.type, v.raw, 0, out)) {
        fail_key(key, strfmt("= %llu does not fit a signed 64-bit integer",
                             (unsigned long long) load<uint64_t>(v.raw.data())));
    }
    return out;
}

int64_t GgufFile::integer_or(const std::string & key, int64_t fallback) const {
    return has_key(key) ? integer(key) : fallback;
}

int64_t GgufFile::integer_in(const std::string & key, int64_t lo, int64_t hi) const {
    const int64_t v = integer(key);
    if (v < lo || v > hi) {
        fail_key(key, strfmt("= %lld is out of range; it must be in [%lld, %lld]", (long long) v, (long long) lo,
                             (long long) hi));
    }
    return v;
}

int64_t GgufFile::integer_in_or(const std::string & key, int64_t fallback, int64_t lo, int64_t hi) const {
    return has_key(key) ? integer_in(key, lo, hi) : fallback;
}

uint32_t GgufFile::u32(const std::string & key) const { return uint32_t(integer_in(key, 0, int64_t(UINT32_MAX))); }

uint32_t GgufFile::u32_or(const std::string & key, uint32_t fallback) const {
    return has_key(key) ? u32(key) : fallback;
}

float GgufFile::f32(const std::string & key) const {
    const GgufValue & v = get(key);
    if (v.is_array) wrong_type(key, "a number (f32, f64 or an integer)");
    double x = 0.0;
    if (v.type == GGUF_TYPE_FLOAT32) {
        x = load<float>(v.raw.data());
    } else if (v.type == GGUF_TYPE_FLOAT64) {
        x = load<double>(v.raw.data());
    } else if (is_integer_type(v.type)) {
        int64_t i = 0;
        if (!integer_at(v.type, v.raw, 0, i)) i = std::numeric_limits<int64_t>::max();
        x = double(i);
    } else {
        wrong_type(key, "a number (f32, f64 or an integer)");
    }
    if (!std::isfinite(x) || std::fabs(x) > double(std::numeric_limits<float>::max())) {
        fail_key(key, strfmt("= %g is not a finite 32-bit float", x));
    }
    return float(x);
}

float GgufFile::f32_or(const std::string & key, float fallback) const { return has_key(key) ? f32(key) : fallback; }

float GgufFile::f32_in(const std::string & key, float lo, float hi, bool lo_open) const {
    const float v = f32(key);
    if ((lo_open ? !(v > lo) : !(v >= lo)) || !(v <= hi)) {
        fail_key(key, strfmt("= %g is out of range; it must be in %c%g, %g]", double(v), lo_open ? '(' : '[',
                             double(lo), double(hi)));
    }
    return v;
}

float GgufFile::f32_in_or(const std::string & key, float fallback, float lo, float hi, bool lo_open) const {
    return has_key(key) ? f32_in(key, lo, hi, lo_open) : fallback;
}

bool GgufFile::boolean_or(const std::string & key, bool fallback) const {
    const GgufValue * v = value(key);
    if (!v) return fallback;
    if (!v->is_array && v->type == GGUF_TYPE_BOOL) return v->raw[0] != 0;
    if (!v->is_array && is_integer_type(v->type)) {
        int64_t i = -1;
        integer_at(v->type, v->raw, 0, i);
        if (i == 0 || i == 1) return i == 1;
        fail_key(key, strfmt("= %lld is not a boolean (0 or 1)", (long long) i));
    }
    wrong_type(key, "a bool");
}

std::string GgufFile::str(const std::string & key) const {
    const GgufValue & v = get(key);
    if (v.is_array || v.type != GGUF_TYPE_STRING) wrong_type(key, "a string");
    size_t bad = 0;
    if (!valid_utf8(v.strs[0], &bad)) {
        fail_key(key, strfmt("holds a string that is not valid UTF-8 (bad byte at offset %zu: \"%s\")", bad,
                             printable(v.strs[0], 80).c_str()));
    }
    return v.strs[0];
}

std::string GgufFile::str_or(const std::string & key, const std::string & fallback) const {
    return has_key(key) ? str(key) : fallback;
}

size_t GgufFile::array_size(const std::string & key) const {
    const GgufValue & v = get(key);
    if (!v.is_array) wrong_type(key, "an array");
    return size_t(v.n);
}

std::vector<std::string> GgufFile::str_array(const std::string & key) const {
    const GgufValue & v = get(key);
    if (!v.is_array || v.type != GGUF_TYPE_STRING) wrong_type(key, "an array of strings");
    for (size_t i = 0; i < v.strs.size(); ++i) {
        size_t bad = 0;
        if (!valid_utf8(v.strs[i], &bad)) {
            fail_key(key, strfmt("entry %zu is not valid UTF-8 (bad byte at offset %zu: \"%s\")", i, bad,
                                 printable(v.strs[i], 80).c_str()));
        }
    }
    return v.strs;
}

std::vector<int64_t> GgufFile::int_array(const std::string & key) const {
    const GgufValue & v = get(key);
    if (!v.is_array || !(is_integer_type(v.type) || v.type == GGUF_TYPE_BOOL)) {
        wrong_type(key, "an array of integers");
    }
    std::vector<int64_t> out(size_t(v.n));
    for (size_t i = 0; i < out.size(); ++i) {
        if (!integer_at(v.type, v.raw, i, out[i])) fail_key(key, strfmt("entry %zu does not fit a signed 64-bit integer", i));
    }
    return out;
}

const TensorInfo * GgufFile::find_tensor(const std::string & name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

int64_t GgufFile::blocks_present(const char * pattern) const {
    const char * pct = std::strstr(pattern, "%d");
    if (!pct) return 0;
    const std::string head(pattern, size_t(pct - pattern)), tail(pct + 2);
    int64_t count = 0;
    for (const TensorInfo & t : tensors_) {
        const std::string & s = t.name;
        if (s.compare(0, head.size(), head) != 0) continue;
        size_t i = head.size();
        int64_t idx = 0;
        size_t digits = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9' && digits < 10) {
            idx = idx * 10 + (s[i] - '0');
            ++i;
            ++digits;
        }
        if (digits == 0 || (digits > 1 && s[head.size()] == '0')) continue;
        if (s.compare(i, tail.size(), tail) != 0) continue;
        if (idx + 1 > count) count = idx + 1;
    }
    return count;
}

void GgufFile::check_blocks(const std::string & key, int64_t n, const char * pattern) const {
    const int64_t present = blocks_present(pattern);
    if (n > present) {
        fail_key(key, strfmt("= %lld, but the file holds tensors of %lld such blocks ('%s' numbered from 0)",
                             (long long) n, (long long) present, pattern));
    }
}

void GgufFile::check_vocabulary(int64_t n_rows) const {
    static const char * kTokens = "tokenizer.ggml.tokens";
    const GgufValue * v = value(kTokens);
    if (!v) return;
    if (!v->is_array || v->type != GGUF_TYPE_STRING) wrong_type(kTokens, "an array of strings");
    if (int64_t(v->n) > n_rows) {
        fail_key(kTokens, strfmt("has %llu entries, but the model's embedding has only %lld rows",
                                 (unsigned long long) v->n, (long long) n_rows));
    }
}

}  // namespace mimo
