"""End-to-end checks of the model-file loaders through `cvllm model-info`.

GGUF files are written with gguf-py (the reference writer) and every tensor
type is dequantized by `cvllm model-info --dump-tensor` and compared with
gguf.quants.dequantize; safetensors files are written by hand (8-byte header
length + JSON + raw bytes) and compared with numpy. Corrupt inputs must give
exit status 1 and a message naming the file. If the default model has been
fetched (scripts/fetch-model), its SmolLM2 facts are checked too.

Build dir: $CVLLM_BUILD_DIR (default: <repo>/build).
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
CVLLM = BUILD / "cli" / "cvllm"
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

pytestmark = pytest.mark.skipif(not CVLLM.exists(), reason=f"{CVLLM} not built")


def run(*args, check=True):
    p = subprocess.run([str(CVLLM), "model-info", *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"cvllm model-info {args} failed ({p.returncode}): {p.stderr}")
    return p


def dump(path, name):
    out = run(path, "--dump-tensor", name).stdout
    return np.array(out.split(), dtype=np.float64).astype(np.float32)


def info(path):
    return json.loads(run(path, "--json").stdout)


# --- GGUF ------------------------------------------------------------------------

RNG = np.random.default_rng(1234)
ROWS, COLS = 3, 512


def random_kquant_blocks(qtype, n_blocks):
    """Random K-quant blocks with finite fp16 scales (gguf-py cannot quantize these)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = RNG.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)

    def put_f16(off):
        raw[:, off:off + 2] = (RNG.standard_normal(n_blocks) * 0.05).astype(np.float16).view(np.uint8).reshape(-1, 2)

    if qtype in (T.Q4_K, T.Q5_K):
        put_f16(0)
        put_f16(2)
    elif qtype == T.Q6_K:
        put_f16(208)
    return raw


def tensor_bytes(qtype, values):
    """(raw array to hand GGUFWriter, raw_dtype) for float values of shape (ROWS, COLS)."""
    if qtype == T.F32:
        return values.astype(np.float32), None
    if qtype == T.F16:
        return values.astype(np.float16), None
    if qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        raw = random_kquant_blocks(qtype, ROWS * COLS // block)
        return raw.reshape(ROWS, COLS // block * size), qtype
    return gguf.quants.quantize(values, qtype), qtype


QTYPES = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K]


def write_llama_gguf(path, arch="llama", tensors=None, extra=None):
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(2)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(50000.0)
    w.add_vocab_size(300)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    if extra:
        extra(w)
    for name, (arr, raw_dtype) in (tensors or {}).items():
        w.add_tensor(name, arr, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def typed_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "types.gguf"
    values = RNG.standard_normal((ROWS, COLS)).astype(np.float32)
    tensors, refs = {}, {}
    for qt in QTYPES:
        raw, raw_dtype = tensor_bytes(qt, values)
        name = f"t.{qt.name.lower()}"
        tensors[name] = (raw, raw_dtype)
        refs[name] = (qt, raw)
    write_llama_gguf(path, tensors=tensors)
    return path, refs


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_gguf_dequant_matches_gguf_py(typed_gguf, qtype):
    path, refs = typed_gguf
    name = f"t.{qtype.name.lower()}"
    qt, raw = refs[name]
    if qt in (T.F32, T.F16):
        ref = raw.astype(np.float32).reshape(-1)
    else:
        ref = gguf.quants.dequantize(raw, qt).astype(np.float32).reshape(-1)
    got = dump(path, name)
    assert got.shape == ref.shape == (ROWS * COLS,)
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)
    # Bit-exact in practice: same operations in the same order as ggml.
    assert np.array_equal(got, ref), f"{np.count_nonzero(got != ref)} values differ"


def test_gguf_dump_distinguishes_tensors(typed_gguf):
    path, _ = typed_gguf
    assert not np.array_equal(dump(path, "t.q4_0"), dump(path, "t.q4_1"))


def test_gguf_config_and_tensor_list(typed_gguf):
    path, _ = typed_gguf
    d = info(path)
    c = d["config"]
    assert d["format"] == "gguf" and d["version"] == 3
    assert c["architecture"] == "llama"
    assert (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]) == (64, 128, 2)
    assert (c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]) == (4, 2, 16)
    assert (c["vocab_size"], c["max_position_embeddings"]) == (300, 2048)
    assert c["rope_theta"] == 50000 and c["rms_norm_eps"] == 1e-5 and c["rope_style"] == "norm"
    assert c["tie_word_embeddings"] is True and c["bos_token_id"] == 1 and c["eos_token_ids"] == [2]
    types = {t["name"]: t["type"] for t in d["tensors"]}
    assert types == {f"t.{q.name.lower()}": q.name for q in QTYPES}
    t = next(t for t in d["tensors"] if t["name"] == "t.q4_k")
    assert t["ne"] == [COLS, ROWS] and t["shape"] == [ROWS, COLS] and t["nbytes"] == ROWS * COLS // 256 * 144
    assert d["metadata"]["llama.block_count"] == 2
    text = run(path).stdout
    assert "architecture: \"llama\"" in text and "t.q6_k" in text and "Q6_K" in text


def test_gguf_qwen2_and_llama3_rope(tmp_path):
    ones = np.ones((64,), dtype=np.float32)
    path = write_llama_gguf(tmp_path / "q.gguf", arch="qwen2",
                            tensors={"blk.0.attn_q.bias": (ones, None), "output.weight": (np.ones((4, 64), np.float32), None)})
    c = info(path)["config"]
    assert c["architecture"] == "qwen2" and c["rope_style"] == "neox"
    assert c["attention_bias"] is True and c["tie_word_embeddings"] is False
    path = write_llama_gguf(tmp_path / "l3.gguf", tensors={"rope_freqs.weight": (np.ones((8,), np.float32), None)})
    assert info(path)["config"]["rope_scaling"]["type"] == "llama3"


def test_gguf_unknown_arch_and_missing_keys(tmp_path):
    path = write_llama_gguf(tmp_path / "g.gguf", arch="gpt2")
    p = run(path, check=False)
    assert p.returncode == 1 and "gpt2" in p.stderr and str(path) in p.stderr
    w = gguf.GGUFWriter(str(tmp_path / "bare.gguf"), "llama")
    w.add_block_count(2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    p = run(tmp_path / "bare.gguf", check=False)
    assert p.returncode == 1 and "embedding_length" in p.stderr


def test_gguf_corrupt_files(typed_gguf, tmp_path):
    path, _ = typed_gguf
    data = path.read_bytes()
    cases = {
        "trunc.gguf": (data[:-40], "outside"),  # the writer pads the end; cut into the data
        "header.gguf": (data[:400], "truncated"),
            "short.gguf": (data[:100], "impossible"),
        "magic.gguf": (b"GGUX" + data[4:], "bad magic"),
        "version.gguf": (data[:4] + struct.pack("<I", 7) + data[8:], "version 7"),
        "count.gguf": (data[:8] + struct.pack("<Q", 1 << 50) + data[16:], "tensor count"),
        "empty.gguf": (b"", "too small"),
    }
    for name, (blob, needle) in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        r = run(p, "--dump-tensor", "t.f32", check=False)
        assert r.returncode == 1, name
        assert needle in r.stderr and str(p) in r.stderr, (name, r.stderr)
        assert r.stdout == ""
    r = run(path, "--dump-tensor", "no.such", check=False)
    assert r.returncode == 1 and "no.such" in r.stderr
    r = run(tmp_path / "missing.gguf", check=False)
    assert r.returncode == 1 and "missing.gguf" in r.stderr
    assert run("--bogus", check=False).returncode == 2


# --- safetensors -------------------------------------------------------------------


def to_bf16(x):
    return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def from_bf16(u):
    return (u.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> (dtype string, numpy array of the stored element type)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dt, arr) in tensors.items():
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def st_tensors():
    x = RNG.standard_normal((5, 7)).astype(np.float32)
    return {
        "model.f32": ("F32", x),
        "model.f16": ("F16", (x * 3).astype(np.float16)),
        "model.bf16": ("BF16", to_bf16(x * 5)),
    }


def expected(dt, arr):
    if dt == "BF16":
        return from_bf16(arr).reshape(-1)
    return arr.astype(np.float32).reshape(-1)


def test_safetensors_single(tmp_path):
    ts = st_tensors()
    write_safetensors(tmp_path / "model.safetensors", ts, metadata={"format": "pt"})
    for src in (tmp_path / "model.safetensors", tmp_path):
        for name, (dt, arr) in ts.items():
            got = dump(src, name)
            assert np.array_equal(got, expected(dt, arr)), name
    d = info(tmp_path / "model.safetensors")
    assert d["format"] == "safetensors" and "config" not in d
    assert {t["name"]: (t["type"], t["shape"]) for t in d["tensors"]} == {
        n: (dt, list(a.shape)) for n, (dt, a) in ts.items()}


def test_safetensors_sharded_with_config(tmp_path):
    ts = st_tensors()
    names = list(ts)
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {n: ts[n] for n in names[:2]})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {n: ts[n] for n in names[2:]})
    wm = {n: f"model-0000{1 if i < 2 else 2}-of-00002.safetensors" for i, n in enumerate(names)}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
           "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
           "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "max_position_embeddings": 8192, "vocab_size": 49152,
           "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"temperature": 0.2, "top_p": 0.9, "top_k": 40, "eos_token_id": [2, 0], "do_sample": True}))
    for name, (dt, arr) in ts.items():
        assert np.array_equal(dump(tmp_path, name), expected(dt, arr)), name
    d = info(tmp_path)
    assert len(d["files"]) == 2
    c = d["config"]
    assert (c["architecture"], c["hidden_size"], c["num_key_value_heads"], c["head_dim"]) == ("llama", 576, 3, 64)
    assert c["rope_theta"] == 100000 and c["rope_style"] == "neox" and c["tie_word_embeddings"] is True
    g = d["generation_config"]
    assert g["temperature"] == 0.2 and g["top_p"] == 0.9 and g["top_k"] == 40 and g["eos_token_ids"] == [2, 0]
    # wrong shard in the index
    wm[names[0]] = "model-00002-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    r = run(tmp_path, check=False)
    assert r.returncode == 1 and names[0] in r.stderr
    # unknown architecture in config.json
    wm[names[0]] = "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "architectures": ["GPTNeoXForCausalLM"]}))
    r = run(tmp_path, check=False)
    assert r.returncode == 1 and "GPTNeoXForCausalLM" in r.stderr and "config.json" in r.stderr


def test_safetensors_corrupt(tmp_path):
    ts = st_tensors()
    good = tmp_path / "good.safetensors"
    write_safetensors(good, ts)
    data = good.read_bytes()
    (hl,) = struct.unpack("<Q", data[:8])
    cases = {
        "trunc": (data[:-2], "past the"),
        "hdr": (data[:8 + hl // 2], "truncated"),
        "len": (struct.pack("<Q", 1 << 40) + data[8:], "exceeds"),
        "json": (data[:8] + b"{" + b"x" * (hl - 1) + data[8 + hl:], "not valid JSON"),
        "extra": (data + b"\0" * 4, "cover"),
    }
    for name, (blob, needle) in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(blob)
        r = run(p, "--dump-tensor", "model.f32", check=False)
        assert r.returncode == 1 and needle in r.stderr and str(p) in r.stderr, (name, r.stderr)
    bad = json.loads(data[8:8 + hl])
    bad["model.f16"]["shape"] = [5, 8]
    h = json.dumps(bad).encode()
    p = tmp_path / "shape.safetensors"
    p.write_bytes(struct.pack("<Q", len(h)) + h + data[8 + hl:])
    r = run(p, check=False)
    assert r.returncode == 1 and "model.f16" in r.stderr
    r = run(good, "--dump-tensor", "model.nope", check=False)
    assert r.returncode == 1 and "model.nope" in r.stderr


# --- the default model ----------------------------------------------------------------


@pytest.mark.skipif(not MODEL.exists(), reason="default model not fetched (scripts/fetch-model)")
def test_smollm2_default_model():
    d = info(MODEL)
    c = d["config"]
    assert c["architecture"] == "llama"
    assert (c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]) == (576, 30, 1536)
    assert (c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]) == (9, 3, 64)
    assert (c["vocab_size"], c["rope_theta"], c["rms_norm_eps"]) == (49152, 100000, 1e-5)
    assert c["tie_word_embeddings"] is True and c["rope_style"] == "norm"
    types = {t["name"]: t["type"] for t in d["tensors"]}
    assert len(types) == 272 and "output.weight" not in types
    assert types["token_embd.weight"] == "Q8_0"
    norms = [n for n in types if "norm" in n]
    assert len(norms) == 61 and all(types[n] == "F32" for n in norms)
    rest = [n for n in types if n not in norms and n != "token_embd.weight"]
    assert len(rest) == 210 and all(types[n] == "Q4_1" for n in rest)
    reader = gguf.GGUFReader(str(MODEL))
    for t in reader.tensors:
        if t.name in ("blk.0.attn_k.weight", "output_norm.weight", "blk.29.ffn_down.weight"):
            ref = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
            assert np.array_equal(dump(MODEL, t.name), ref), t.name
