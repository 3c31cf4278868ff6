"""Pin the conventions of the spec-written torch references (tests/reference/*_ref.py) cheaply.

Each check is a property the spec states and a wrong reference would break:
block attention direction (spec/dflash.md §8.6), the context window's
HF convention (|p - j| < window), the shorter k-proposal block (§3.2), the
MTP pairing (h_i, t_{i+k+1}) without hidden chaining (spec/mtp.md §2.1,
§7.4), and that the new backbone hidden-state API agrees with its logits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dflash_fixtures as df
import moe_fixtures as mf
from reference.dflash_ref import DFlashReference
from reference.mimo2_ref import Mimo2Reference
from reference.mtp_ref import MtpReference

V, H = 300, 64


@pytest.fixture(scope="module")
def dflash_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dflash_ref") / "dflash"
    df.write_dflash_checkpoint(folder, window=16, block_size=4, std=0.15, seed=1)
    return folder


@pytest.fixture(scope="module")
def target():
    rng = np.random.default_rng(2)
    embed = rng.standard_normal((V, H)).astype(np.float32)
    head = (rng.standard_normal((V, H)) * 0.2).astype(np.float32)
    features = rng.standard_normal((40, 3 * H)).astype(np.float32)  # 40 context positions, 3 captured layers
    return embed, head, features


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# ---------------------------------------------------------------------------------------------
# DFlash


@pytest.mark.parametrize("causal", [False, True])
def test_dflash_block_direction(dflash_folder, target, causal):
    """§8.6: a change to the last mask slot reaches earlier rows only when the block is non-causal."""
    embed, head, feats = target
    ref = DFlashReference(dflash_folder, embed, head, causal=causal)
    h0 = ref.block_inputs(anchor=5, n_proposals=3).numpy()
    changed = h0.copy()
    changed[-1] += np.random.default_rng(3).standard_normal(H).astype(np.float32)
    a, b = ref.block_hidden(feats, h0), ref.block_hidden(feats, changed)
    assert _max_diff(a[-1], b[-1]) > 1e-2
    if causal:
        assert np.array_equal(a[:-1], b[:-1])
    else:
        assert min(_max_diff(a[i], b[i]) for i in range(3)) > 1e-4


def test_dflash_context_window_is_hf_convention(dflash_folder, target):
    """Block row 0 sits at p = n = 40 and sees context keys j with p - j < 16, i.e. j >= 25; later rows fewer."""
    embed, head, feats = target
    ref = DFlashReference(dflash_folder, embed, head)
    assert ref.window == 16  # from dflash_config.swa_window_size
    base = ref.block_logits(feats, anchor=7)
    outside = feats.copy()
    outside[:25] = np.random.default_rng(4).standard_normal((25, 3 * H))
    assert np.array_equal(ref.block_logits(outside, anchor=7), base)
    edge = feats.copy()
    edge[25] += 1.0  # the oldest key row 0 still sees
    assert _max_diff(ref.block_logits(edge, anchor=7), base) > 1e-4
    # without a window every context position counts
    full = DFlashReference(dflash_folder, embed, head, window=None)
    assert _max_diff(full.block_logits(outside, anchor=7), full.block_logits(feats, anchor=7)) > 1e-4


def test_dflash_short_block_and_rope_bases(dflash_folder, target):
    """§3.2: k proposals run a block of 1 + k rows; with a causal block its rows equal the full block's."""
    embed, head, feats = target
    for causal in (False, True):
        ref = DFlashReference(dflash_folder, embed, head, causal=causal)
        full, short = ref.block_logits(feats, anchor=9), ref.block_logits(feats, anchor=9, n_proposals=2)
        assert full.shape == (3, V) and short.shape == (2, V)
        if causal:
            assert np.allclose(short, full[:2], atol=1e-5)
        else:
            assert _max_diff(short, full[:2]) > 1e-4
        assert ref.proposals(feats, anchor=9) == [int(i) for i in full.argmax(-1)]
    # the context RoPE base only moves context keys: with no context it cannot matter
    a = DFlashReference(dflash_folder, embed, head, rope_base_ctx=5e6)
    b = DFlashReference(dflash_folder, embed, head)
    assert a.n_rot == 8 and a.rope_base_block == 10000.0
    assert np.allclose(a.block_logits(feats[:0], anchor=3), b.block_logits(feats[:0], anchor=3), atol=1e-6)
    assert _max_diff(a.block_logits(feats, anchor=3), b.block_logits(feats, anchor=3)) > 1e-4


# ---------------------------------------------------------------------------------------------
# backbone hidden states and MTP


@pytest.fixture(scope="module")
def mtp_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mtp_ref") / "ckpt"
    geo = mf.PRO_GEOMETRY.replace(experts=2)  # FP8 fused qkv chunked over 2 ranks, 1 SWA KV head each
    mf.write_synthetic_checkpoint(folder, geo, linear="fp8", experts="bf16", extras=False, mtp_layers=3, seed=4)
    return folder


def test_hidden_states_agree_with_logits(mtp_folder):
    ref = Mimo2Reference(mtp_folder)
    ids = [3, 17, 250, 9, 42, 8]
    last = ref.n_layer - 1
    hs = ref.hidden_states(ids, [0, 2, last])
    assert set(hs) == {0, 2, last, "post_norm"} and hs[0].shape == (6, 64)
    normed = ref.rms(torch.from_numpy(hs[last]), "model.norm.weight").numpy()
    assert np.allclose(normed, hs["post_norm"], atol=1e-6)
    assert np.allclose(hs["post_norm"] @ ref.lm_head().T, ref.logits(ids), atol=1e-5)
    assert ref.embedding().shape == (300, 64)
    assert not np.allclose(hs[0], hs[2])
    pre = MtpReference(mtp_folder, hidden="pre_norm")
    assert np.array_equal(pre.backbone_hidden(ids), hs[last])


@pytest.fixture(scope="module")
def mtp_case(mtp_folder):
    ref = MtpReference(mtp_folder)
    tokens = [11, 22, 33, 44]
    hid = ref.backbone_hidden(tokens)
    return ref, hid, tokens


def test_mtp_pairing(mtp_case):
    """§2.1 / §7.4: layer k row i pairs (h_i, t_{i+k+1}): layer 0 never reads t_0, layer 1 never t_0 or t_1."""
    ref, hid, tokens = mtp_case
    s, anchor, drafts = 4, 55, [66, 77]
    base = ref.draft_logits(hid, tokens, s, anchor, 3, drafts=drafts)
    assert base.shape == (3, V)

    def with_token(j, t):
        toks = list(tokens)
        toks[j] = t
        return ref.draft_logits(hid, toks, s, anchor, 3, drafts=drafts)

    t0, t1 = with_token(0, 99), with_token(1, 99)
    assert np.array_equal(t0, base)  # no layer reads t_0
    assert _max_diff(t1[0], base[0]) > 1e-4 and np.array_equal(t1[1:], base[1:])  # only layer 0 reads t_1
    t2 = with_token(2, 99)
    assert _max_diff(t2[1], base[1]) > 1e-4 and np.array_equal(t2[2], base[2])  # layer 2 starts at t_3
    # the draft a layer consumes is the previous layer's: forcing d_1 changes layers 1 and 2 only
    other = ref.draft_logits(hid, tokens, s, anchor, 3, drafts=[67, 77])
    assert np.array_equal(other[0], base[0]) and _max_diff(other[1], base[1]) > 1e-4
    # the row of layer k at s-1 is exactly layer_logits over rows (h_i, tok(i+k+1)) at positions i
    seq = tokens + [anchor] + drafts
    for k in range(3):
        assert np.allclose(ref.layer_logits(k, hid, seq[k + 1 : s + k + 1], np.arange(s))[s - 1], base[k], atol=1e-6)
    assert ref.draft(hid, tokens, s, anchor, 1) == [int(np.argmax(base[0]))]


def test_mtp_no_hidden_chaining(mtp_folder, mtp_case):
    """Every layer sees the target hidden: changing layer 0's weights moves only layer 0's logits."""
    ref, hid, tokens = mtp_case
    base = ref.draft_logits(hid, tokens, 4, 55, 3, drafts=[66, 77])
    altered = MtpReference(mtp_folder)
    name = "model.mtp.layers.0.eh_proj.weight"
    altered.backbone.t[name] = altered.backbone.t[name] * 1.5
    got = altered.draft_logits(hid, tokens, 4, 55, 3, drafts=[66, 77])
    assert _max_diff(got[0], base[0]) > 1e-4 and np.array_equal(got[1:], base[1:])
    # and every row's hidden matters to every layer (row 0 is in the window of row s-1)
    moved = hid.copy()
    moved[0] += np.random.default_rng(5).standard_normal(moved.shape[1]).astype(np.float32)  # not a rescale: hnorm
    got = ref.draft_logits(moved, tokens, 4, 55, 3, drafts=[66, 77])
    assert min(_max_diff(got[k], base[k]) for k in range(3)) > 1e-5


def test_mtp_positions_are_relative_and_windowed(mtp_folder, mtp_case):
    """RoPE and the SWA window depend only on position differences (§2.1's position convention);
    a query sees window_keys keys, itself included."""
    ref, hid, tokens = mtp_case
    toks = tokens[1:] + [55]
    a = ref.layer_logits(0, hid, toks, np.arange(4))
    b = ref.layer_logits(0, hid, toks, np.arange(4) + 1)  # llama.cpp's "token position" offset
    assert np.allclose(a, b, atol=1e-4)
    c = MtpReference(mtp_folder, window_keys=2).layer_logits(0, hid, toks, np.arange(4))
    assert np.array_equal(c[:2], a[:2]) and min(_max_diff(c[i], a[i]) for i in (2, 3)) > 1e-5
