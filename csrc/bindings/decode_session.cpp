// Python classes _core.DecodeSession (a decode session on a loaded decoder:
// eval, reset, truncate, the generator, and with a speculative drafter its
// proposals) and _core.Generator (the shared decode loop or the
// speculative one, one token per next() call), plus _core.Sampler for tests.
// Long calls release the GIL; the session's mutex keeps Python threads from
// running one session at once (the Python wrappers serialize whole
// operations on top of this).
#include <cmath>
#include <limits>
#include <optional>

#include "bindings/common.h"
#include "core/errors.h"
#include "sessions/speculative.h"
#include "sessions/token_generator.h"

namespace mimo::bindings {
namespace {

// Appends token rows to the session; with a drafter, chunk by chunk, each
// chunk's captured rows committed to it. Outputs of the last n_out rows.
DecodeOutput eval_committed(PyDecodeState & st, const int32_t * ids, int64_t n, int64_t n_out, bool want_hidden) {
    DecodeSession & s = st.get();
    DecodeRows rows;
    rows.tokens = ids;
    if (!st.drafter) return s.eval(rows, n, n_out, want_hidden);
    if (n <= 0) fail(ErrorKind::InvalidArgument, "eval needs at least one position");
    DecodeOutput all;
    const int64_t first_out = n - n_out;
    for (int64_t done = 0; done < n;) {
        const int64_t m = std::min(s.max_batch(), n - done);
        const int64_t chunk_out = std::max<int64_t>(0, done + m - std::max(first_out, done));
        const int64_t p0 = s.n_past();
        rows.tokens = ids + done;
        DecodeOutput o = s.eval(rows, m, std::max<int64_t>(chunk_out, 1), want_hidden);
        st.drafter->commit(p0, ids + done, o.captured.data(), m);
        if (chunk_out > 0) {
            all.logits.insert(all.logits.end(), o.logits.begin(), o.logits.end());
            all.hidden.insert(all.hidden.end(), o.hidden.begin(), o.hidden.end());
            all.n_out += chunk_out;
        }
        done += m;
    }
    return all;
}

py::dict stats_dict(const DraftStats & st) {
    py::dict d;
    d["rounds"] = st.rounds;
    d["proposed"] = st.proposed;
    d["accepted"] = st.accepted;
    d["mean_accepted_length"] = st.mean_accepted_length();
    std::vector<double> rate;
    for (size_t i = 0; i < st.proposed_at.size(); ++i) {
        rate.push_back(st.proposed_at[i] ? double(st.accepted_at[i]) / double(st.proposed_at[i]) : 0.0);
    }
    d["acceptance_by_position"] = rate;
    d["proposed_by_position"] = st.proposed_at;
    d["accepted_by_position"] = st.accepted_at;
    d["draft_s"] = st.draft_s;
    d["verify_s"] = st.verify_s;
    return d;
}

class PyGenerator {
public:
    // spec: set for a session with a drafter (then the speculative loop runs)
    PyGenerator(std::shared_ptr<PyDecodeState> state, std::vector<int32_t> prompt, GenerationOptions options,
                std::optional<SpeculativeOptions> spec)
        : state_(std::move(state)) {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(state_->mutex);
        DecodeSession & s = state_->get();
        std::vector<float> logits;
        if (options.max_tokens > 0) {
            if (prompt.empty()) fail(ErrorKind::InvalidArgument, "the prompt is empty");
            logits = eval_committed(*state_, prompt.data(), int64_t(prompt.size()), 1, false).logits;
        } else {
            logits.assign(size_t(s.model().n_vocab()), 0.0f);  // nothing will be sampled
        }
        if (spec) {
            speculative_ = std::make_unique<SpeculativeGenerator>(s, *state_->drafter, std::move(logits),
                                                                  std::move(options), std::move(*spec));
        } else {
            plain_.emplace(s, std::move(logits), std::move(options));
        }
    }

    py::object next() {
        std::optional<GeneratedToken> t;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(state_->mutex);
            state_->get();  // raises once the session is closed
            t = speculative_ ? speculative_->next() : plain_->next();
        }
        if (!t) return py::none();
        return py::make_tuple(t->id, t->logprob, t->is_stop);
    }

    std::string finish_reason() const {
        return finish_reason_name(speculative_ ? speculative_->finish_reason() : plain_->finish_reason());
    }
    int64_t n_generated() const { return speculative_ ? speculative_->n_generated() : plain_->n_generated(); }
    py::object draft_stats() const { return speculative_ ? py::object(stats_dict(speculative_->stats())) : py::none(); }

private:
    std::shared_ptr<PyDecodeState> state_;
    std::optional<TokenGenerator> plain_;
    std::unique_ptr<SpeculativeGenerator> speculative_;
};

std::vector<int32_t> id_list(py::handle ids) { return ids.is_none() ? std::vector<int32_t>{} : token_ids(ids); }

}  // namespace

SamplerParams sampler_params(double temperature, int64_t top_k, double top_p, py::object seed) {
    SamplerParams p;
    if (!std::isfinite(temperature) || temperature < 0) {
        fail(ErrorKind::InvalidArgument, strfmt("temperature must be >= 0 (0 = greedy), got %g", temperature));
    }
    if (top_k < 0 || top_k > std::numeric_limits<int32_t>::max()) {
        fail(ErrorKind::InvalidArgument,
             strfmt("top_k must be between 0 (off) and %d, got %lld", std::numeric_limits<int32_t>::max(),
                    (long long) top_k));
    }
    if (!(top_p > 0.0 && top_p <= 1.0)) fail(ErrorKind::InvalidArgument, strfmt("top_p must be in (0, 1], got %g", top_p));
    p.temperature = float(temperature);
    p.top_k = int(top_k);
    p.top_p = float(top_p);
    if (!seed.is_none()) {
        if (!py::isinstance<py::int_>(seed) || py::isinstance<py::bool_>(seed)) {
            fail(ErrorKind::InvalidArgument, "seed must be an integer");
        }
        py::int_ s = seed;
        if (s < py::int_(0) || s > py::int_(std::numeric_limits<uint64_t>::max())) {
            fail(ErrorKind::InvalidArgument, "seed must be between 0 and 2**64 - 1");
        }
        p.seed = s.cast<uint64_t>();
    }
    Sampler check(p);  // the remaining rules live with the sampler
    return p;
}

py::object make_decode_session(std::unique_ptr<DecodeSession> session, const std::string & kv_type,
                               std::unique_ptr<Drafter> drafter, const std::string & draft_kind, int64_t draft_block) {
    auto state = std::make_shared<PyDecodeState>();
    state->session = std::move(session);
    state->kv_type = kv_type;
    state->drafter = std::move(drafter);
    state->draft_kind = draft_kind;
    state->draft_block = draft_block;
    return py::cast(state);
}

void bind_decode_session(py::module_ & m) {
    using S = PyDecodeState;
    py::class_<S, std::shared_ptr<S>>(m, "DecodeSession")
        .def("eval",
             [](S & self, py::object tokens, py::object embeddings, int64_t n_out, bool return_hidden) -> py::object {
                 if (tokens.is_none() == embeddings.is_none()) {
                     fail(ErrorKind::InvalidArgument,
                          "pass exactly one of tokens= (token ids) or embeddings= (n, n_embd floats)");
                 }
                 const int64_t n_embd = self.get().model().n_embd(), n_vocab = self.get().model().n_vocab();
                 std::vector<int32_t> ids;
                 std::vector<float> emb;
                 DecodeRows rows;
                 int64_t n = 0;
                 if (!tokens.is_none()) {
                     ids = token_ids(tokens);
                     n = int64_t(ids.size());
                     rows.tokens = ids.data();
                 } else {
                     auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(embeddings);
                     if (!a || a.ndim() != 2 || a.shape(1) != n_embd) {
                         fail(ErrorKind::InvalidArgument,
                              strfmt("embeddings must be a 2-D float array of shape (n, %lld)", (long long) n_embd));
                     }
                     n = a.shape(0);
                     emb.assign(a.data(), a.data() + n * n_embd);
                     rows.embeddings = emb.data();
                     rows.n_emb = n;
                 }
                 if (n_out < 0) n_out = n;  // -1: every position
                 if (self.drafter && ids.empty()) {
                     fail(ErrorKind::InvalidArgument, "a session with a drafter evaluates token ids, not embeddings");
                 }
                 DecodeOutput out;
                 {
                     py::gil_scoped_release nogil;
                     std::lock_guard<std::mutex> lock(self.mutex);
                     out = self.drafter ? eval_committed(self, ids.data(), n, n_out, return_hidden)
                                        : self.get().eval(rows, n, n_out, return_hidden);
                 }
                 py::array_t<float> logits = float_array(out.logits, {out.n_out, n_vocab});
                 if (!return_hidden) return logits;
                 return py::make_tuple(logits, float_array(out.hidden, {out.n_out, n_embd}));
             },
             py::arg("tokens") = py::none(), py::arg("embeddings") = py::none(), py::arg("n_out") = 1,
             py::arg("return_hidden") = false)
        .def("generator",
             [](std::shared_ptr<S> self, py::handle prompt, int64_t max_tokens, double temperature, int64_t top_k,
                double top_p, py::object seed, py::handle stop, py::handle banned, bool speculative,
                std::optional<int64_t> draft_block, py::object draft_override) {
                 GenerationOptions o;
                 o.sampler = sampler_params(temperature, top_k, top_p, seed);
                 o.stop_ids = id_list(stop);
                 o.banned = id_list(banned);
                 o.max_tokens = max_tokens;
                 std::optional<SpeculativeOptions> spec;
                 if (!speculative && self->drafter) {
                     // the plain loop feeds the target only: the drafter's context would fall behind it
                     fail(ErrorKind::InvalidArgument,
                          "speculative=False on a session with a drafter; open a second session without a draft on "
                          "the same model for plain decoding");
                 }
                 if (self->drafter) {
                     spec.emplace();
                     spec->block = draft_block.value_or(self->draft_block);
                     if (!draft_override.is_none()) {
                         py::function fn = draft_override;
                         spec->override_drafts = [fn](std::vector<int32_t> & drafts, int64_t start) {
                             py::gil_scoped_acquire gil;
                             drafts = token_ids(fn(drafts, start));
                         };
                     }
                 } else if (!draft_override.is_none()) {
                     fail(ErrorKind::InvalidArgument, "draft_override needs a session with a drafter");
                 }
                 return std::make_unique<PyGenerator>(self, token_ids(prompt), std::move(o), std::move(spec));
             },
             py::arg("prompt"), py::arg("max_tokens"), py::arg("temperature") = 0.0, py::arg("top_k") = 0,
             py::arg("top_p") = 1.0, py::arg("seed") = py::none(), py::arg("stop") = py::none(),
             py::arg("banned") = py::none(), py::arg("speculative") = true, py::arg("draft_block") = py::none(),
             py::arg("draft_override") = py::none(),
             "Evaluate prompt (appended to the context) and return a Generator of the next tokens (speculative when "
             "the session has a drafter; speculative=False is refused there)")
        .def("propose",
             [](S & self, py::handle tokens, std::optional<int64_t> k) {
                 if (!self.drafter) fail(ErrorKind::InvalidArgument, "this session has no drafter");
                 std::vector<int32_t> ids = token_ids(tokens);
                 if (ids.size() < 2) {
                     fail(ErrorKind::InvalidArgument,
                          "propose needs at least two tokens: the committed context and the anchor after it");
                 }
                 Draft d;
                 int64_t n_vocab = 0;
                 {
                     py::gil_scoped_release nogil;
                     std::lock_guard<std::mutex> lock(self.mutex);
                     DecodeSession & s = self.get();
                     n_vocab = s.model().n_vocab();
                     s.reset();
                     self.drafter->reset();
                     const int64_t n = int64_t(ids.size()) - 1;
                     eval_committed(self, ids.data(), n, 1, false);
                     const int64_t kk = k.value_or(std::min(self.draft_block - 1, self.drafter->max_drafts()));
                     d = self.drafter->propose(ids.back(), n, kk, [&](const float * row) {
                         return argmax(row, n_vocab, {});
                     });
                 }
                 return py::make_tuple(d.tokens, float_array(d.logits, {py::ssize_t(d.tokens.size()), n_vocab}));
             },
             py::arg("tokens"), py::arg("k") = py::none(),
             "Reset, evaluate tokens[:-1], and return the drafter's greedy proposals after the anchor tokens[-1] "
             "with the logits rows they came from")
        .def("reset", [](S & self) {
            std::lock_guard<std::mutex> lock(self.mutex);
            self.get().reset();
            if (self.drafter) self.drafter->reset();
        })
        .def("truncate", [](S & self, int64_t n) {
            std::lock_guard<std::mutex> lock(self.mutex);
            if (self.drafter && !self.drafter->can_truncate(n) && self.get().can_truncate(n)) {
                fail(ErrorKind::InvalidArgument,
                     strfmt("truncate(%lld): the drafter no longer holds that context; call reset()", (long long) n));
            }
            self.get().truncate(n);
            if (self.drafter) self.drafter->truncate(n);
        }, py::arg("n"))
        .def("can_truncate", [](S & self, int64_t n) {
            std::lock_guard<std::mutex> lock(self.mutex);
            return self.get().can_truncate(n) && (!self.drafter || self.drafter->can_truncate(n));
        }, py::arg("n"))
        .def("close", [](S & self) {
            {
                std::lock_guard<std::mutex> lock(self.mutex);
                self.session.reset();
                self.drafter.reset();
            }
            release_free_heap();
        })
        .def_property_readonly("closed", [](S & self) { return !self.session; })
        .def_property_readonly("n_past", [](S & self) { return self.get().n_past(); })
        .def_property_readonly("n_ctx", [](S & self) { return self.get().n_ctx(); })
        .def_property_readonly("n_batch", [](S & self) { return self.get().max_batch(); })
        .def_property_readonly("swa_window_keys", [](S & self) { return self.get().window_keys(); })
        .def_property_readonly("swa_slots", [](S & self) { return self.get().swa_slots(); })
        .def_property_readonly("kv_type", [](S & self) { return self.kv_type; })
        .def_property_readonly("draft", [](S & self) { return self.draft_kind; })
        .def_property_readonly("draft_block", [](S & self) { return self.draft_block; })
        .def_property_readonly("kv_bytes", [](S & self) { return self.get().kv().bytes(); })
        .def_property_readonly("kv_bytes_per_token", [](S & self) { return self.get().kv_bytes_per_token(); })
        .def_property_readonly("kv_bytes_swa", [](S & self) { return self.get().kv_bytes_swa(); });

    py::class_<PyGenerator>(m, "Generator")
        .def("next", &PyGenerator::next, "(token id, log-probability, is_stop), or None when finished")
        .def_property_readonly("finish_reason", &PyGenerator::finish_reason)
        .def_property_readonly("n_generated", &PyGenerator::n_generated)
        .def_property_readonly("draft_stats", &PyGenerator::draft_stats);

    py::class_<Sampler>(m, "Sampler")
        .def(py::init([](double temperature, int64_t top_k, double top_p, py::object seed) {
                 return Sampler(sampler_params(temperature, top_k, top_p, seed));
             }),
             py::arg("temperature") = 0.0, py::arg("top_k") = 0, py::arg("top_p") = 1.0, py::arg("seed") = py::none())
        .def("sample",
             [](Sampler & s, py::array_t<float, py::array::c_style | py::array::forcecast> logits, py::handle banned) {
                 if (logits.ndim() != 1) fail(ErrorKind::InvalidArgument, "logits must be a 1-D float array");
                 return s.sample(logits.data(), logits.shape(0), id_list(banned));
             },
             py::arg("logits"), py::arg("banned") = py::none());
}

}  // namespace mimo::bindings
