"""CPU forward pass vs a float64 numpy reference (model-formats.md §7.1).

Tiny random llama/qwen2 models (2 layers, hidden 64, 4 heads / 2 KV heads,
vocab 300; hidden 256 for the 256-element K-quants Q4_K/Q5_K/Q6_K) are written with gguf-py
(GGUF, llama q/k rows permuted as convert_hf_to_gguf does, adjacent-pair RoPE)
and by hand as HF safetensors + config.json (unpermuted, half-split RoPE).
tests/tools/forward_tool runs scripted batches and prints logits.

The reference dequantizes the exact bytes written (gguf.quants.dequantize) and
runs in float64, so differences come only from the engine's f32 arithmetic.
Metric: max |logit - ref| / max |ref| over all compared logits. Bounds:
1e-4 for every weight type on these models (measured: ~1e-6; see
docs/model-runner.md).

With the default model (models/SmolLM2-135M-Instruct.Q4_1.gguf; skipped if
absent) greedy generation from "The capital of France is" must say Paris. The
prompt ids [504, 3575, 282, 4649, 314] come from model-formats.md §5 and are
verified here against the GGUF vocabulary (their pieces concatenate to the
prompt), since the project has no tokenizer yet.
"""
import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as T  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CVLLM_BUILD_DIR", ROOT / "build"))
TOOL = BUILD / "tests" / "tools" / "forward_tool"
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

pytestmark = pytest.mark.skipif(not TOOL.exists(), reason=f"{TOOL} not built")

TOL = 1e-4


# --- numpy reference ------------------------------------------------------------------


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def inv_freq(c):
    hd = c["hd"]
    f = c["theta"] ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    if c.get("freq_factors") is not None:
        f = f / np.asarray(c["freq_factors"], np.float64)
    elif c.get("llama3"):
        factor, lo, hi, orig = c["llama3"]
        wl = 2 * np.pi / f
        s = (orig / wl - lo) / (hi - lo)
        div = np.where(wl < orig / hi, 1.0, np.where(wl > orig / lo, factor, 1.0 / ((1 - s) / factor + s)))
        f = f / div
    return f


def rope(v, n_heads, hd, pos, freqs, neox):
    v = v.reshape(len(pos), n_heads, hd).copy()
    ang = pos[:, None].astype(np.float64) * freqs[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    out = np.empty_like(v)
    if neox:
        a, b = v[..., : hd // 2], v[..., hd // 2:]
        out[..., : hd // 2] = a * cos - b * sin
        out[..., hd // 2:] = b * cos + a * sin
    else:
        a, b = v[..., 0::2], v[..., 1::2]
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
    return out


def ref_forward(W, c, tokens, neox):
    """Logits (float64) for every position of one sequence starting at position 0."""
    tokens = np.asarray(tokens)
    n, hd, nh, nkv, eps = len(tokens), c["hd"], c["nh"], c["nkv"], c["eps"]
    pos = np.arange(n)
    freqs = inv_freq(c)
    x = W["embd"][tokens].astype(np.float64)
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(c["L"]):
        p = lambda k: W[f"{l}.{k}"]  # noqa: E731
        h = rms(x, p("attn_norm"), eps)
        q, k, v = h @ p("wq").T, h @ p("wk").T, h @ p("wv").T
        if f"{l}.bq" in W:
            q, k, v = q + p("bq"), k + p("bk"), v + p("bv")
        q = rope(q, nh, hd, pos, freqs, neox)
        k = rope(k, nkv, hd, pos, freqs, neox)
        v = v.reshape(n, nkv, hd)
        att = np.empty((n, nh, hd))
        for j in range(nh):
            g = j // (nh // nkv)
            s = q[:, j] @ k[:, g].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            att[:, j] = (s / s.sum(axis=1, keepdims=True)) @ v[:, g]
        x = x + att.reshape(n, nh * hd) @ p("wo").T
        h = rms(x, p("ffn_norm"), eps)
        g, u = h @ p("w_gate").T, h @ p("w_up").T
        x = x + (g / (1 + np.exp(-g)) * u) @ p("w_down").T
    return rms(x, W["out_norm"], eps) @ W.get("output", W["embd"]).T


# --- tiny models ----------------------------------------------------------------------------

SMALL = dict(H=64, F=128, L=2, nh=4, nkv=2, hd=16, V=300, theta=10000.0, eps=1e-5)
WIDE = dict(H=256, F=512, L=2, nh=4, nkv=2, hd=64, V=300, theta=10000.0, eps=1e-5)  # K-quants: rows of 256

MATS = {"wq": ("attn_q", "self_attn.q_proj"), "wk": ("attn_k", "self_attn.k_proj"),
        "wv": ("attn_v", "self_attn.v_proj"), "wo": ("attn_output", "self_attn.o_proj"),
        "w_gate": ("ffn_gate", "mlp.gate_proj"), "w_up": ("ffn_up", "mlp.up_proj"),
        "w_down": ("ffn_down", "mlp.down_proj")}


def hf_weights(c, seed=7, bias=False, untied=False):
    """Random weights in HF orientation ([out, in]), float32."""
    r = np.random.default_rng(seed)
    H, F, nq, nkv = c["H"], c["F"], c["nh"] * c["hd"], c["nkv"] * c["hd"]
    shapes = {"wq": (nq, H), "wk": (nkv, H), "wv": (nkv, H), "wo": (H, nq), "w_gate": (F, H), "w_up": (F, H),
              "w_down": (H, F)}
    W = {"embd": r.standard_normal((c["V"], H)).astype(np.float32),
         "out_norm": (1 + 0.1 * r.standard_normal(H)).astype(np.float32)}
    if untied:
        W["output"] = (r.standard_normal((c["V"], H)) / np.sqrt(H)).astype(np.float32)
    for l in range(c["L"]):
        for k, s in shapes.items():
            W[f"{l}.{k}"] = (r.standard_normal(s) / np.sqrt(s[1])).astype(np.float32)
        W[f"{l}.attn_norm"] = (1 + 0.1 * r.standard_normal(H)).astype(np.float32)
        W[f"{l}.ffn_norm"] = (1 + 0.1 * r.standard_normal(H)).astype(np.float32)
        if bias:
            W[f"{l}.bq"] = (0.1 * r.standard_normal(nq)).astype(np.float32)
            W[f"{l}.bk"] = (0.1 * r.standard_normal(nkv)).astype(np.float32)
            W[f"{l}.bv"] = (0.1 * r.standard_normal(nkv)).astype(np.float32)
    return W


def permute(w, n_head):
    """convert_hf_to_gguf.py LlamaModel.permute: HF half-split rows -> adjacent pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def kquant_blocks(qtype, rows, cols, rng):
    """Random K-quant blocks with roughly zero-mean values (gguf-py cannot quantize these).
    Q4_K/Q5_K: value = d*sc*q - dmin*m with dmin = d and m ~ mean(q)*sc; Q6_K: d*sc*(q-32), sc signed."""
    _, size = gguf.GGML_QUANT_SIZES[qtype]
    nb = rows * cols // 256
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    if qtype in (T.Q4_K, T.Q5_K):
        d = (np.abs(rng.standard_normal(nb)) * 2e-3 + 5e-4).astype(np.float16).view(np.uint8).reshape(-1, 2)
        raw[:, 0:2] = d
        raw[:, 2:4] = d
        q5 = qtype == T.Q5_K  # values 0..31 (mean 15.5) instead of 0..15
        sc = rng.integers(1, 5 if q5 else 9, size=(nb, 8))
        m = np.round((15.5 if q5 else 7.5) * sc).astype(np.int64)
        sb = np.zeros((nb, 12), np.int64)
        sb[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
        sb[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
        sb[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
        raw[:, 4:16] = sb.astype(np.uint8)
    else:
        raw[:, 208:210] = (np.abs(rng.standard_normal(nb)) * 4e-5 + 1e-5).astype(np.float16) \
            .view(np.uint8).reshape(-1, 2)
    return raw.reshape(rows, cols // 256 * size)


def encode(values, qtype, rng):
    """(array for GGUFWriter, raw_dtype, float64 values the engine will see)."""
    if qtype == T.F32:
        return values, None, values.astype(np.float64)
    if qtype == T.F16:
        a = values.astype(np.float16)
        return a, None, a.astype(np.float64)
    if qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
        raw = kquant_blocks(qtype, *values.shape, rng)
    else:
        raw = gguf.quants.quantize(values, qtype)
    return raw, qtype, gguf.quants.dequantize(raw, qtype).astype(np.float64).reshape(values.shape)


def write_gguf(path, c, W, qtype=T.F32, arch="llama", freq_factors=None, seed=3):
    """Writes W (HF orientation) as a GGUF; returns the float64 weights the file holds."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(2048)
    w.add_embedding_length(c["H"])
    w.add_block_count(c["L"])
    w.add_feed_forward_length(c["F"])
    w.add_head_count(c["nh"])
    w.add_head_count_kv(c["nkv"])
    w.add_layer_norm_rms_eps(c["eps"])
    w.add_rope_freq_base(c["theta"])
    w.add_vocab_size(c["V"])
    ref = {}

    def mat(name, key, vals):
        arr, raw, ref[key] = encode(vals, qtype, rng)
        w.add_tensor(name, arr, raw_dtype=raw)

    def vec(name, key, vals):
        ref[key] = vals.astype(np.float64)
        w.add_tensor(name, vals)

    mat("token_embd.weight", "embd", W["embd"])
    if "output" in W:
        mat("output.weight", "output", W["output"])
    vec("output_norm.weight", "out_norm", W["out_norm"])
    if freq_factors is not None:
        w.add_tensor("rope_freqs.weight", np.asarray(freq_factors, np.float32))
    for l in range(c["L"]):
        for k, (g, _) in MATS.items():
            v = W[f"{l}.{k}"]
            if arch == "llama" and k == "wq":
                v = permute(v, c["nh"])
            elif arch == "llama" and k == "wk":
                v = permute(v, c["nkv"])
            mat(f"blk.{l}.{g}.weight", f"{l}.{k}", np.ascontiguousarray(v))
        vec(f"blk.{l}.attn_norm.weight", f"{l}.attn_norm", W[f"{l}.attn_norm"])
        vec(f"blk.{l}.ffn_norm.weight", f"{l}.ffn_norm", W[f"{l}.ffn_norm"])
        for b, g in (("bq", "attn_q"), ("bk", "attn_k"), ("bv", "attn_v")):
            if f"{l}.{b}" in W:
                vec(f"blk.{l}.{g}.bias", f"{l}.{b}", W[f"{l}.{b}"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return ref


def write_safetensors(dirpath, c, W, arch="llama", dtype="F32", rope_scaling=None):
    """HF directory: config.json + model.safetensors (unpermuted q/k). Returns float64 weights."""
    dirpath.mkdir(parents=True, exist_ok=True)
    names = {"embd": "model.embed_tokens.weight", "out_norm": "model.norm.weight", "output": "lm_head.weight"}
    for l in range(c["L"]):
        for k, (_, h) in MATS.items():
            names[f"{l}.{k}"] = f"model.layers.{l}.{h}.weight"
        names[f"{l}.attn_norm"] = f"model.layers.{l}.input_layernorm.weight"
        names[f"{l}.ffn_norm"] = f"model.layers.{l}.post_attention_layernorm.weight"
        for b, h in (("bq", "q_proj"), ("bk", "k_proj"), ("bv", "v_proj")):
            names[f"{l}.{b}"] = f"model.layers.{l}.self_attn.{h}.bias"
    header, blobs, off, ref = {}, [], 0, {}
    for key, arr in W.items():
        if dtype == "BF16":
            bits = (arr.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)  # truncation is a valid bf16
            data = bits.tobytes()
            ref[key] = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            data = arr.astype(np.float32).tobytes()
            ref[key] = arr.astype(np.float64)
        header[names[key]] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    (dirpath / "model.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    cfg = {"architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "LlamaForCausalLM"], "model_type": arch,
           "hidden_size": c["H"], "intermediate_size": c["F"], "num_hidden_layers": c["L"],
           "num_attention_heads": c["nh"], "num_key_value_heads": c["nkv"], "rms_norm_eps": c["eps"],
           "rope_theta": c["theta"], "max_position_embeddings": 2048, "vocab_size": c["V"],
           "tie_word_embeddings": "output" not in W, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu"}
    if rope_scaling:
        cfg["rope_scaling"] = rope_scaling
    (dirpath / "config.json").write_text(json.dumps(cfg))
    return ref


# --- driver ----------------------------------------------------------------------------------


def run_tool(model, *args, stdin=None, check=True):
    p = subprocess.run([str(TOOL), str(model), *map(str, args)], input=stdin, capture_output=True, text=True,
                       timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"forward_tool {args} failed ({p.returncode}): {p.stderr}")
    return p


def script(model, steps, threads=1, block_size=16, blocks=64, q8=False):
    """steps: list of (all_logits, [(pos0, block_table, tokens), ...]). Returns a list of arrays
    (or the error code for a rejected step)."""
    lines = []
    for all_logits, seqs in steps:
        lines.append("step all" if all_logits else "step")
        for pos0, table, toks in seqs:
            lines.append(f"seq {pos0} {','.join(map(str, table))} {','.join(map(str, toks))}")
        lines.append("end")
    out = run_tool(model, "--threads", threads, "--block-size", block_size, "--blocks", blocks, *(["--q8"] if q8 else []),
                   "script",
                   stdin="\n".join(lines) + "\n").stdout.splitlines()
    res, i = [], 0
    while i < len(out):
        f = out[i].split()
        if f[2] == "error":
            res.append(int(f[3]))
            i += 1
            continue
        rows = int(f[3])
        res.append(np.array([list(map(float, ln.split())) for ln in out[i + 1:i + 1 + rows]]))
        i += 1 + rows
    return res


def rel_err(got, ref):
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


PROMPT = [5, 17, 250, 3, 99, 42, 7, 128, 64, 1, 299, 0]


def full_logits(model, tokens, threads=1, q8=False):
    return script(model, [(True, [(0, list(range(4)), tokens)])], threads=threads, q8=q8)[0]


# --- accuracy vs numpy per weight type -------------------------------------------------------------

QTYPES = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K]


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_gguf_logits_match_numpy(tmp_path, qtype):
    c = WIDE if qtype in (T.Q4_K, T.Q5_K, T.Q6_K) else SMALL
    W = hf_weights(c)
    ref_w = write_gguf(tmp_path / "m.gguf", c, W, qtype)
    got = full_logits(tmp_path / "m.gguf", PROMPT)
    ref = ref_forward(ref_w, c, PROMPT, neox=False)
    assert got.shape == (len(PROMPT), c["V"])
    err = rel_err(got, ref)
    print(f"{qtype.name}: max rel err {err:.2e}")
    assert err <= TOL
    assert (got.argmax(1) == ref.argmax(1)).all()
    # The check can fail: the wrong RoPE style gives different logits.
    assert rel_err(ref_forward(ref_w, c, PROMPT, neox=True), ref) > 1e-2


@pytest.mark.parametrize("dtype", ["F32", "BF16"])
def test_hf_safetensors_half_split_rope(tmp_path, dtype):
    c = SMALL
    W = hf_weights(c, seed=11)
    ref_st = write_safetensors(tmp_path / "hf", c, W, dtype=dtype)
    got_st = full_logits(tmp_path / "hf", PROMPT)
    ref = ref_forward(ref_st, c, PROMPT, neox=True)
    assert rel_err(got_st, ref) <= TOL
    if dtype == "F32":
        # Same weights as a GGUF (q/k permuted, adjacent pairs): same logits.
        write_gguf(tmp_path / "m.gguf", c, W, T.F32)
        got_g = full_logits(tmp_path / "m.gguf", PROMPT)
        assert rel_err(got_g, got_st) <= TOL
        assert rel_err(ref_forward(ref_st, c, PROMPT, neox=False), ref) > 1e-2


@pytest.mark.parametrize("fmt", ["gguf", "hf"])
def test_qwen2_bias_untied(tmp_path, fmt):
    c = SMALL
    W = hf_weights(c, seed=5, bias=True, untied=True)
    if fmt == "gguf":
        path, ref_w = tmp_path / "q.gguf", write_gguf(tmp_path / "q.gguf", c, W, T.F32, arch="qwen2")
    else:
        path, ref_w = tmp_path / "hf", write_safetensors(tmp_path / "hf", c, W, arch="qwen2")
    got = full_logits(path, PROMPT)
    assert rel_err(got, ref_forward(ref_w, c, PROMPT, neox=True)) <= TOL
    no_bias = {k: v for k, v in ref_w.items() if not k.endswith(("bq", "bk", "bv"))}
    assert rel_err(ref_forward(no_bias, c, PROMPT, neox=True), got) > 1e-3


def test_llama3_rope_scaling(tmp_path):
    c = dict(SMALL, theta=500000.0)
    W = hf_weights(c, seed=9)
    tokens = [int(t) for t in np.random.default_rng(1).integers(0, 300, 40)]
    # GGUF: per-frequency factors stored in rope_freqs.weight.
    ff = np.linspace(1.0, 8.0, c["hd"] // 2)
    ref_w = write_gguf(tmp_path / "l3.gguf", c, W, T.F32, freq_factors=ff)
    got = full_logits(tmp_path / "l3.gguf", tokens)
    assert rel_err(got, ref_forward(ref_w, dict(c, freq_factors=ff), tokens, neox=False)) <= TOL
    assert rel_err(got, ref_forward(ref_w, c, tokens, neox=False)) > 1e-3
    # HF: factors computed from config.json rope_scaling (small orig ctx so all three bands occur).
    rs = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}
    ref_st = write_safetensors(tmp_path / "hf", c, W, rope_scaling=rs)
    got = full_logits(tmp_path / "hf", tokens)
    c3 = dict(c, llama3=(8.0, 1.0, 4.0, 64.0))
    f = inv_freq(c3) / inv_freq(c)
    assert (f == 1).any() and (np.isclose(f, 1 / 8)).any() and ((f < 1) & (f > 1 / 8)).any()
    assert rel_err(got, ref_forward(ref_st, c3, tokens, neox=True)) <= TOL


Q8_TOL = 3e-2  # 8-bit activations (k_matmul_q8): measured ~5e-3 on these models


@pytest.mark.parametrize("qtype", [T.Q8_0, T.Q4_0, T.Q4_1], ids=lambda q: q.name)
def test_q8_activations_close_to_numpy(tmp_path, qtype):
    W = hf_weights(SMALL)
    ref_w = write_gguf(tmp_path / "m.gguf", SMALL, W, qtype)
    ref = ref_forward(ref_w, SMALL, PROMPT, neox=False)
    exact = full_logits(tmp_path / "m.gguf", PROMPT)
    got = full_logits(tmp_path / "m.gguf", PROMPT, q8=True)
    err = rel_err(got, ref)
    print(f"{qtype.name} q8: max rel err {err:.2e}")
    assert err <= Q8_TOL
    assert rel_err(got, exact) > 1e-6  # the integer path was taken
    # Each token's logits are independent of how the batch is composed (bitwise).
    inc = incremental(tmp_path / "m.gguf", PROMPT, [0, 1, 2], [5, 1, 4, 2], q8=True)
    assert np.array_equal(inc, got[[4, 5, 9, 11]])
    assert np.array_equal(incremental(tmp_path / "m.gguf", PROMPT, [0, 1, 2], [5, 1, 4, 2], q8=True, threads=2), inc)


# --- batching, paging, incremental decode, threads ------------------------------------------------


@pytest.fixture(scope="module")
def q41_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("fw") / "q41.gguf"
    write_gguf(path, SMALL, hf_weights(SMALL, seed=21), T.Q4_1)
    return path


TOKS = [int(t) for t in np.random.default_rng(2).integers(0, 300, 23)]


def incremental(model, tokens, table, chunks, block_size=4, threads=1, q8=False):
    """Runs `tokens` as chunks of the given sizes; returns the last-token logits of every step."""
    steps, off = [], 0
    for n in chunks:
        steps.append((False, [(off, table, tokens[off:off + n])]))
        off += n
    assert off == len(tokens)
    return np.vstack(script(model, steps, threads=threads, block_size=block_size, blocks=16, q8=q8))


def test_prefill_then_decode_equals_full_recompute(q41_model):
    full = script(q41_model, [(True, [(0, list(range(6)), TOKS)])], block_size=4, blocks=16)[0]
    chunks = [7, 5, 1, 1, 1, 3, 1, 1, 1, 1, 1]
    inc = incremental(q41_model, TOKS, list(range(6)), chunks)
    ends = np.cumsum(chunks) - 1
    assert rel_err(inc, full[ends]) <= 1e-5
    assert not np.allclose(full[ends[0]], full[ends[1]])


def test_paged_shuffled_blocks_equal_contiguous(q41_model):
    chunks = [9, 1, 1, 5, 1, 6]
    contiguous = incremental(q41_model, TOKS, [0, 1, 2, 3, 4, 5], chunks)
    shuffled = incremental(q41_model, TOKS, [11, 3, 14, 0, 7, 9], chunks)
    assert np.array_equal(contiguous, shuffled)
    # Other block sizes give the same numbers too.
    bs16 = np.vstack(script(q41_model, [(False, [(0, [2, 1], TOKS[:9])]), (False, [(9, [2, 1], TOKS[9:10])])],
                            block_size=16, blocks=4))
    assert np.array_equal(bs16, contiguous[:2])


def test_batch_of_sequences_equals_each_alone(q41_model):
    a, b, c = TOKS[:10], TOKS[5:20], TOKS[12:15]
    # Sequence states: a has 9 cached tokens and decodes its 10th; b prefills 15; c has 1 cached, adds 2.
    pre = [(False, [(0, [0, 1, 2], a[:9])]), (False, [(0, [9], c[:1])])]
    alone = script(q41_model, pre + [(True, [(9, [0, 1, 2], a[9:])]),
                                     (True, [(0, [3, 4, 5, 6], b)]),
                                     (True, [(1, [9], c[1:])])], block_size=4, blocks=16)
    together = script(q41_model, pre + [(True, [(9, [0, 1, 2], a[9:]), (0, [3, 4, 5, 6], b), (1, [9], c[1:])])],
                      block_size=4, blocks=16)
    want = np.vstack(alone[2:])
    assert together[2].shape == want.shape == (1 + 15 + 2, SMALL["V"])
    assert rel_err(together[2], want) <= 1e-5
    # Default (last-token) rows of a batch.
    last = script(q41_model, pre + [(False, [(9, [0, 1, 2], a[9:]), (0, [3, 4, 5, 6], b), (1, [9], c[1:])])],
                  block_size=4, blocks=16)[2]
    assert rel_err(last, want[[0, 15, 17]]) <= 1e-5


@pytest.mark.parametrize("threads", [2, 3])
def test_identical_across_thread_counts(q41_model, threads):
    chunks = [9, 1, 1, 5, 1, 6]
    one = incremental(q41_model, TOKS, [11, 3, 14, 0, 7, 9], chunks, threads=1)
    many = incremental(q41_model, TOKS, [11, 3, 14, 0, 7, 9], chunks, threads=threads)
    assert np.array_equal(one, many)


def test_malformed_batches_are_rejected(q41_model):
    res = script(q41_model, [
        (False, [(0, [0], [300])]),          # token out of vocabulary
        (False, [(0, [16], [1, 2])]),        # block index out of range (16 blocks)
        (False, [(0, [0], [1] * 5)]),        # block table too short for 5 tokens of block size 4
        (False, [(0, [0, 1], [1, 2, 3])]),   # fine
    ], block_size=4, blocks=16)
    assert res[0] == res[1] == res[2] == -22  # -EINVAL
    assert isinstance(res[3], np.ndarray) and res[3].shape == (1, SMALL["V"])


def test_bad_model_files(tmp_path):
    c = SMALL
    W = hf_weights(c)
    del W["1.w_up"]
    write_safetensors(tmp_path / "hf", c, W)
    p = run_tool(tmp_path / "hf", "script", stdin="", check=False)
    assert p.returncode == 1 and "model.layers.1.mlp.up_proj.weight" in p.stderr
    p = run_tool(tmp_path / "nope.gguf", "script", stdin="", check=False)
    assert p.returncode == 1


# --- default model -----------------------------------------------------------------------------------


PARIS_PROMPT = [504, 3575, 282, 4649, 314]  # "The capital of France is" (model-formats.md §5)


def vocab(path):
    r = gguf.GGUFReader(str(path))
    f = r.fields["tokenizer.ggml.tokens"]
    return [bytes(f.parts[i]).decode("utf-8", "replace") for i in f.data]


def detok(toks, ids):
    return "".join(toks[i] for i in ids).replace("\u0120", " ").replace("\u010a", "\n")


@pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} not fetched (scripts/fetch-model)")
def test_default_model_says_paris():
    toks = vocab(MODEL)
    assert detok(toks, PARIS_PROMPT) == "The capital of France is"
    outs = set()
    for args in (["--threads", 1], ["--threads", 2], ["--threads", 2, "--chunk", 2, "--shuffle"], ["--threads", 1]):
        ids = run_tool(MODEL, *args, "generate", 16, ",".join(map(str, PARIS_PROMPT))).stdout.split()
        outs.add(tuple(ids))
    assert len(outs) == 1, outs
    text = detok(toks, [int(i) for i in outs.pop()])
    print(repr(text))
    assert "Paris" in text
    # 8-bit activations: still Paris, and deterministic across thread counts.
    q8 = {tuple(run_tool(MODEL, "--q8", "--threads", t, "generate", 8, ",".join(map(str, PARIS_PROMPT))).stdout.split())
          for t in (1, 2)}
    assert len(q8) == 1
    assert "Paris" in detok(toks, [int(i) for i in q8.pop()])
