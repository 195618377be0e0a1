#!/usr/bin/env python3
"""Convert a Whisper checkpoint to the ggml file format whisper.cpp loads.

Inputs (needs only Python 3 and numpy):
  --ct2 DIR   a CTranslate2 Whisper model directory (model.bin, config.json,
              vocabulary.txt or tokenizer.json), as shipped by faster-whisper.
  --hf DIR    a Hugging Face Whisper checkpoint directory (config.json,
              model.safetensors or model.safetensors.index.json + shards,
              vocab.json or tokenizer.json, optionally added_tokens.json),
              e.g. a fine-tuned model.

Output: --out FILE with --ftype f16 (default), f32 or q8_0.

  --check FILE  reads a ggml Whisper file back, prints its hparams and
                validates every tensor's name, type and shape against what
                whisper.cpp 1.8.x's whisper_model_load expects.

The layout written is the one whisper.cpp's loader reads: magic, 11 int32
hparams, mel filter bank (n_mel, n_fft, f32 data), vocabulary (count, then
length-prefixed raw token bytes), then tensors (n_dims, name length, ggml
type, dims with ne[0] first, name, data) with no padding. Type rules (from
whisper_model_load): the big matrices (attention/MLP weights and the token
embedding) use the file's weight type; the two conv kernels are f16 unless
the file is f32; everything else (biases, norms, positional embeddings) is
f32. Q8_0 = blocks of 32 values: f16 scale d = max|x|/127, 32 int8
round(x/d).
"""

import argparse
import json
import mmap
import os
import re
import struct
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover - environment problem, not a bug
    sys.stderr.write("whisper_convert: numpy is required (pip install numpy)\n")
    sys.exit(2)

GGML_MAGIC = 0x67676D6C
GGML_QNT_VERSION = 2
GGML_QNT_VERSION_FACTOR = 1000

# ggml tensor types used here
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q8_0 = 8
TYPE_NAMES = {GGML_TYPE_F32: "f32", GGML_TYPE_F16: "f16", GGML_TYPE_Q8_0: "q8_0"}

# file ftype (ggml_ftype) -> weight tensor type
FTYPES = {
    "f32": (0, GGML_TYPE_F32),
    "f16": (1, GGML_TYPE_F16),
    "q8_0": (7, GGML_TYPE_Q8_0),
}
FTYPE_TO_WTYPE = {v[0]: v[1] for v in FTYPES.values()}

QK8_0 = 32
Q8_0_BLOCK_BYTES = 2 + QK8_0


class ConvertError(Exception):
    """A problem with the input or output the user can act on."""


# --------------------------------------------------------------------------
# mel filter bank (Slaney mel scale, Slaney area normalisation)
# --------------------------------------------------------------------------

_F_SP = 200.0 / 3.0           # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0          # start of the log part
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    mel = f / _F_SP
    log_part = f >= _MIN_LOG_HZ
    safe = np.where(log_part, f, _MIN_LOG_HZ)
    return np.where(log_part, _MIN_LOG_MEL + np.log(safe / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    hz = _F_SP * m
    log_part = m >= _MIN_LOG_MEL
    return np.where(log_part, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), hz)


def mel_filters(n_mels=80, n_fft=400, sr=16000):
    """Triangular mel filters, shape (n_mels, 1 + n_fft // 2), float32.

    Same definition as librosa.filters.mel(sr, n_fft, n_mels) with its
    defaults (fmin=0, fmax=sr/2, htk=False, norm='slaney'), which is what
    Whisper's mel_filters.npz holds.
    """
    n_bins = 1 + n_fft // 2
    fft_freqs = np.linspace(0.0, sr / 2.0, n_bins)
    mel_pts = np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts)
    widths = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    return weights.astype(np.float32)


# --------------------------------------------------------------------------
# byte-level BPE vocabulary
# --------------------------------------------------------------------------

def _byte_unicode_table():
    """GPT-2 byte-level alphabet: byte value -> printable character."""
    printable = (list(range(ord("!"), ord("~") + 1))
                 + list(range(ord("\u00a1"), ord("\u00ac") + 1))
                 + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_UNICODE_TO_BYTE = {c: b for b, c in _byte_unicode_table().items()}


def token_bytes(token):
    """Decode one byte-level BPE token string to the raw bytes it stands for."""
    try:
        return bytes(_UNICODE_TO_BYTE[c] for c in token)
    except KeyError as e:
        raise ConvertError("token %r has a character outside the byte-level "
                           "alphabet (%r); not a Whisper/GPT-2 vocabulary"
                           % (token, e.args[0]))


def _is_special(tok):
    return tok.startswith("<|") and tok.endswith("|>")


def regular_tokens(id_to_token):
    """The tokens a ggml file lists, as raw bytes: ids 0..50256.

    That is the BPE vocabulary plus id 50256, which is <|endoftext|> in the
    English-only vocabulary and an empty token in the multilingual one;
    whisper.cpp's own files (OpenAI's convert-pt-to-ggml) list exactly these
    50257 entries, and whisper.cpp generates names for the remaining special
    tokens from hparams.n_vocab.
    """
    eot = None
    for i, tok in enumerate(id_to_token):
        if tok == "<|endoftext|>":
            eot = i
            break
    if eot is None:
        raise ConvertError("vocabulary has no <|endoftext|> token")
    if eot not in (50256, 50257):
        raise ConvertError("<|endoftext|> at id %d; Whisper has it at 50256 (English) "
                           "or 50257 (multilingual)" % eot)
    out = []
    for i in range(50257):
        tok = id_to_token[i] if i < len(id_to_token) else None
        if tok is None or tok == "":
            out.append(b"")
        elif _is_special(tok):
            if i != 50256:
                raise ConvertError("special token %r at id %d, inside the BPE vocabulary" % (tok, i))
            out.append(tok.encode("utf-8"))
        else:
            out.append(token_bytes(tok))
    return out


def _vocab_from_tokenizer_json(path):
    with open(path, "rb") as f:
        tj = json.load(f)
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or "vocab" not in model:
        raise ConvertError("%s: not a BPE tokenizer.json" % path)
    mapping = dict(model["vocab"])
    for added in tj.get("added_tokens", []):
        mapping[added["content"]] = added["id"]
    return _ids_to_list(mapping)


def _ids_to_list(mapping):
    n = max(mapping.values()) + 1
    out = [None] * n
    for tok, i in mapping.items():
        out[i] = tok
    return out


def load_vocab_ct2(model_dir):
    vt = os.path.join(model_dir, "vocabulary.txt")
    vj = os.path.join(model_dir, "vocabulary.json")
    tj = os.path.join(model_dir, "tokenizer.json")
    if os.path.exists(vt):
        with open(vt, "r", encoding="utf-8") as f:
            return f.read().split("\n")
    if os.path.exists(vj):
        with open(vj, "r", encoding="utf-8") as f:
            return json.load(f)
    if os.path.exists(tj):
        return _vocab_from_tokenizer_json(tj)
    raise ConvertError("%s: no vocabulary.txt, vocabulary.json or tokenizer.json" % model_dir)


def load_vocab_hf(model_dir):
    vj = os.path.join(model_dir, "vocab.json")
    tj = os.path.join(model_dir, "tokenizer.json")
    if os.path.exists(vj):
        with open(vj, "r", encoding="utf-8") as f:
            mapping = json.load(f)
        at = os.path.join(model_dir, "added_tokens.json")
        if os.path.exists(at):
            with open(at, "r", encoding="utf-8") as f:
                mapping.update(json.load(f))
        return _ids_to_list(mapping)
    if os.path.exists(tj):
        return _vocab_from_tokenizer_json(tj)
    raise ConvertError("%s: no vocab.json or tokenizer.json" % model_dir)


# --------------------------------------------------------------------------
# CTranslate2 model.bin reader
# --------------------------------------------------------------------------

# CTranslate2 DataType ids
_CT2_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",
}


def _bf16_to_f32(raw_u16):
    return (raw_u16.astype(np.uint32) << 16).view(np.float32)


class _Cursor:
    def __init__(self, buf, path):
        self.buf = buf
        self.off = 0
        self.path = path

    def take(self, n):
        if self.off + n > len(self.buf):
            raise ConvertError("%s: truncated at byte %d (wanted %d more)" % (self.path, self.off, n))
        start = self.off
        self.off += n
        return start

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        start = self.take(size)
        return struct.unpack_from(fmt, self.buf, start)[0]

    def string(self):
        n = self.unpack("<H")
        start = self.take(n)
        raw = bytes(self.buf[start:start + n])
        if not raw.endswith(b"\0"):
            raise ConvertError("%s: malformed string at byte %d" % (self.path, start))
        return raw[:-1].decode("utf-8")


def read_ct2(path):
    """Parse a CTranslate2 model.bin.

    Returns (spec_name, revision, variables) where variables maps each name
    (aliases resolved) to a numpy array (float arrays are views on the file,
    bfloat16 is widened to float32).
    """
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    cur = _Cursor(buf, path)
    version = cur.unpack("<I")
    if version < 5 or version > 6:
        raise ConvertError("%s: CTranslate2 binary version %d not supported (5 or 6 expected)"
                           % (path, version))
    spec = cur.string()
    revision = cur.unpack("<I")
    count = cur.unpack("<I")
    variables = {}
    for _ in range(count):
        name = cur.string()
        ndim = cur.unpack("<B")
        shape = tuple(cur.unpack("<I") for _ in range(ndim))
        dtype_id = cur.unpack("<B")
        nbytes = cur.unpack("<I")
        start = cur.take(nbytes)
        dt = _CT2_DTYPES.get(dtype_id)
        if dt is None:
            raise ConvertError("%s: variable %s has unknown dtype id %d" % (path, name, dtype_id))
        if dt == "bfloat16":
            arr = _bf16_to_f32(np.frombuffer(buf, dtype="<u2", count=nbytes // 2, offset=start))
        else:
            if nbytes % dt.itemsize:
                raise ConvertError("%s: variable %s: %d bytes is not a multiple of %d"
                                   % (path, name, nbytes, dt.itemsize))
            arr = np.frombuffer(buf, dtype=dt, count=nbytes // dt.itemsize, offset=start)
        expect = int(np.prod(shape)) if shape else 1
        if arr.size != expect:
            raise ConvertError("%s: variable %s: shape %s but %d values"
                               % (path, name, shape, arr.size))
        variables[name] = arr.reshape(shape) if shape else arr.reshape(())
    if cur.off < len(buf):
        n_alias = cur.unpack("<I")
        for _ in range(n_alias):
            alias = cur.string()
            target = cur.string()
            if target not in variables:
                raise ConvertError("%s: alias %s -> missing %s" % (path, alias, target))
            variables[alias] = variables[target]
    return spec, revision, variables


# --------------------------------------------------------------------------
# safetensors reader
# --------------------------------------------------------------------------

_ST_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "F64": np.dtype("<f8"),
    "BF16": "bfloat16",
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}


def read_safetensors(path):
    """Parse one .safetensors file into {name: numpy array} (views on the file)."""
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if len(buf) < 8:
        raise ConvertError("%s: too short for safetensors" % path)
    (hlen,) = struct.unpack_from("<Q", buf, 0)
    if hlen > len(buf) - 8 or hlen > 100 * 1024 * 1024:
        raise ConvertError("%s: bad safetensors header length %d" % (path, hlen))
    try:
        header = json.loads(bytes(buf[8:8 + hlen]).decode("utf-8"))
    except ValueError as e:
        raise ConvertError("%s: bad safetensors header: %s" % (path, e))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _ST_DTYPES.get(info.get("dtype"))
        if dt is None:
            raise ConvertError("%s: tensor %s has unsupported dtype %s" % (path, name, info.get("dtype")))
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if base + end > len(buf) or begin > end:
            raise ConvertError("%s: tensor %s lies outside the file" % (path, name))
        if dt == "bfloat16":
            arr = _bf16_to_f32(np.frombuffer(buf, dtype="<u2", count=(end - begin) // 2, offset=base + begin))
        else:
            arr = np.frombuffer(buf, dtype=dt, count=(end - begin) // dt.itemsize, offset=base + begin)
        n = int(np.prod(shape)) if shape else 1
        if arr.size != n:
            raise ConvertError("%s: tensor %s: shape %s but %d values" % (path, name, shape, arr.size))
        out[name] = arr.reshape(shape)
    return out


def write_safetensors(path, tensors):
    """Write {name: array} as .safetensors (f32/f16 only). Used by the tests."""
    names = sorted(tensors)
    header = {}
    off = 0
    blobs = []
    for n in names:
        a = np.ascontiguousarray(tensors[n])
        code = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}.get(a.dtype)
        if code is None:
            raise ConvertError("write_safetensors: unsupported dtype %s" % a.dtype)
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[n] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


# --------------------------------------------------------------------------
# model description common to both inputs
# --------------------------------------------------------------------------

class WhisperWeights:
    """hparams + tensors named as whisper.cpp names them (numpy layout)."""

    def __init__(self):
        self.hparams = {}
        self.tensors = {}   # whisper.cpp name -> numpy array (float)
        self.vocab = []     # raw bytes of the regular BPE tokens
        self.source = ""


HPARAM_ORDER = ("n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
                "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels")


def _need(vars_, name, where):
    if name not in vars_:
        raise ConvertError("%s: missing tensor %s (unknown layout?)" % (where, name))
    return vars_[name]


def _scalar(v):
    return int(np.asarray(v).reshape(-1)[0])


def _split_rows(w, parts, what):
    rows = w.shape[0]
    if rows % parts:
        raise ConvertError("%s: %d rows cannot be split in %d" % (what, rows, parts))
    n = rows // parts
    return [w[i * n:(i + 1) * n] for i in range(parts)]


def _check_key_bias(b, what):
    """Whisper's key projections have no bias; a fused CT2 bias must hold zeros there."""
    m = float(np.max(np.abs(b.astype(np.float32)))) if b.size else 0.0
    if m > 1e-6:
        raise ConvertError("%s: key bias is not zero (max |b| = %g); whisper.cpp has no key "
                           "bias, refusing to drop it" % (what, m))


def from_ct2(model_dir):
    path = os.path.join(model_dir, "model.bin")
    if not os.path.exists(path):
        raise ConvertError("%s: no model.bin" % model_dir)
    spec, revision, v = read_ct2(path)
    if spec != "WhisperSpec":
        raise ConvertError("%s: spec %r is not WhisperSpec" % (path, spec))
    for name, arr in v.items():
        if name.endswith("weight_scale") or (arr.dtype == np.int8 and arr.ndim >= 2):
            raise ConvertError("%s: int8-quantized CTranslate2 model (%s); convert a float16 or "
                               "float32 CTranslate2 model instead" % (path, name))
    where = path
    W = WhisperWeights()
    W.source = "ctranslate2 %s rev %d" % (spec, revision)
    t = W.tensors

    def layer_count(prefix):
        pat = re.compile(r"^%s/layer_(\d+)/" % prefix)
        ids = {int(m.group(1)) for m in (pat.match(k) for k in v) if m}
        if not ids or sorted(ids) != list(range(len(ids))):
            raise ConvertError("%s: cannot count %s layers" % (where, prefix))
        return len(ids)

    n_enc = layer_count("encoder")
    n_dec = layer_count("decoder")
    for flag, want in (("decoder/scale_embeddings", 0), ("decoder/pre_norm", 1)):
        if flag in v and _scalar(v[flag]) != want:
            raise ConvertError("%s: %s = %d, not a Whisper decoder" % (where, flag, _scalar(v[flag])))

    conv1 = _need(v, "encoder/conv1/weight", where)
    t["encoder.conv1.weight"] = conv1
    t["encoder.conv1.bias"] = _need(v, "encoder/conv1/bias", where).reshape(-1, 1)
    t["encoder.conv2.weight"] = _need(v, "encoder/conv2/weight", where)
    t["encoder.conv2.bias"] = _need(v, "encoder/conv2/bias", where).reshape(-1, 1)
    t["encoder.positional_embedding"] = _need(v, "encoder/position_encodings/encodings", where)
    t["encoder.ln_post.weight"] = _need(v, "encoder/layer_norm/gamma", where)
    t["encoder.ln_post.bias"] = _need(v, "encoder/layer_norm/beta", where)

    def norm(src, dst):
        t[dst + ".weight"] = _need(v, src + "/gamma", where)
        t[dst + ".bias"] = _need(v, src + "/beta", where)

    def linear(src, dst):
        t[dst + ".weight"] = _need(v, src + "/weight", where)
        t[dst + ".bias"] = _need(v, src + "/bias", where)

    def fused_qkv(src, dst):
        w = _need(v, src + "/weight", where)
        b = _need(v, src + "/bias", where)
        wq, wk, wv = _split_rows(w, 3, src)
        bq, bk, bv = _split_rows(b, 3, src)
        _check_key_bias(bk, src)
        t[dst + ".query.weight"], t[dst + ".query.bias"] = wq, bq
        t[dst + ".key.weight"] = wk
        t[dst + ".value.weight"], t[dst + ".value.bias"] = wv, bv

    def fused_kv(src, dst):
        w = _need(v, src + "/weight", where)
        b = _need(v, src + "/bias", where)
        wk, wv = _split_rows(w, 2, src)
        bk, bv = _split_rows(b, 2, src)
        _check_key_bias(bk, src)
        t[dst + ".key.weight"] = wk
        t[dst + ".value.weight"], t[dst + ".value.bias"] = wv, bv

    for i in range(n_enc):
        s, d = "encoder/layer_%d" % i, "encoder.blocks.%d" % i
        norm(s + "/self_attention/layer_norm", d + ".attn_ln")
        fused_qkv(s + "/self_attention/linear_0", d + ".attn")
        linear(s + "/self_attention/linear_1", d + ".attn.out")
        norm(s + "/ffn/layer_norm", d + ".mlp_ln")
        linear(s + "/ffn/linear_0", d + ".mlp.0")
        linear(s + "/ffn/linear_1", d + ".mlp.2")

    emb = _need(v, "decoder/embeddings/weight", where)
    t["decoder.token_embedding.weight"] = emb
    t["decoder.positional_embedding"] = _need(v, "decoder/position_encodings/encodings", where)
    t["decoder.ln.weight"] = _need(v, "decoder/layer_norm/gamma", where)
    t["decoder.ln.bias"] = _need(v, "decoder/layer_norm/beta", where)
    proj = v.get("decoder/projection/weight")
    if proj is not None and proj is not emb and not np.array_equal(proj, emb):
        raise ConvertError("%s: output projection is not tied to the token embedding; "
                           "whisper.cpp cannot represent that" % where)
    if "decoder/projection/bias" in v:
        pb = v["decoder/projection/bias"]
        if np.any(pb != 0):
            raise ConvertError("%s: output projection has a bias; whisper.cpp has none" % where)

    for i in range(n_dec):
        s, d = "decoder/layer_%d" % i, "decoder.blocks.%d" % i
        norm(s + "/self_attention/layer_norm", d + ".attn_ln")
        fused_qkv(s + "/self_attention/linear_0", d + ".attn")
        linear(s + "/self_attention/linear_1", d + ".attn.out")
        norm(s + "/attention/layer_norm", d + ".cross_attn_ln")
        linear(s + "/attention/linear_0", d + ".cross_attn.query")
        fused_kv(s + "/attention/linear_1", d + ".cross_attn")
        linear(s + "/attention/linear_2", d + ".cross_attn.out")
        norm(s + "/ffn/layer_norm", d + ".mlp_ln")
        linear(s + "/ffn/linear_0", d + ".mlp.0")
        linear(s + "/ffn/linear_1", d + ".mlp.2")

    n_state = conv1.shape[0]
    W.hparams = {
        "n_vocab": emb.shape[0],
        "n_audio_ctx": t["encoder.positional_embedding"].shape[0],
        "n_audio_state": n_state,
        "n_audio_head": _scalar(_need(v, "encoder/num_heads", where)),
        "n_audio_layer": n_enc,
        "n_text_ctx": t["decoder.positional_embedding"].shape[0],
        "n_text_state": emb.shape[1],
        "n_text_head": _scalar(_need(v, "decoder/num_heads", where)),
        "n_text_layer": n_dec,
        "n_mels": conv1.shape[1],
    }
    W.vocab = regular_tokens(load_vocab_ct2(model_dir))
    return W


def _load_hf_tensors(model_dir):
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(single):
        return read_safetensors(single)
    if os.path.exists(index):
        with open(index, "r", encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        out = {}
        for shard in sorted(set(weight_map.values())):
            out.update(read_safetensors(os.path.join(model_dir, shard)))
        return out
    if any(os.path.exists(os.path.join(model_dir, n)) for n in ("pytorch_model.bin", "model.pt")):
        raise ConvertError("%s: only PyTorch pickles found; save the model with "
                           "safe_serialization=True (model.safetensors) first" % model_dir)
    raise ConvertError("%s: no model.safetensors or model.safetensors.index.json" % model_dir)


def from_hf(model_dir):
    cfg_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(cfg_path):
        raise ConvertError("%s: no config.json" % model_dir)
    with open(cfg_path, "r", encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("model_type", "whisper") != "whisper":
        raise ConvertError("%s: model_type %r is not whisper" % (cfg_path, cfg.get("model_type")))
    raw = _load_hf_tensors(model_dir)
    v = {}
    for k, a in raw.items():
        v[k[len("model."):] if k.startswith("model.") else k] = a
    where = model_dir
    W = WhisperWeights()
    W.source = "huggingface %s" % (cfg.get("_name_or_path") or os.path.basename(os.path.abspath(model_dir)))
    t = W.tensors

    def get(name):
        return _need(v, name, where)

    def linear(src, dst, bias=True):
        t[dst + ".weight"] = get(src + ".weight")
        if bias:
            t[dst + ".bias"] = get(src + ".bias")
        elif src + ".bias" in v:
            _check_key_bias(v[src + ".bias"], src)

    def norm(src, dst):
        t[dst + ".weight"] = get(src + ".weight")
        t[dst + ".bias"] = get(src + ".bias")

    def attn(src, dst):
        linear(src + ".q_proj", dst + ".query")
        linear(src + ".k_proj", dst + ".key", bias=False)
        linear(src + ".v_proj", dst + ".value")
        linear(src + ".out_proj", dst + ".out")

    n_enc = int(cfg["encoder_layers"])
    n_dec = int(cfg["decoder_layers"])
    t["encoder.conv1.weight"] = get("encoder.conv1.weight")
    t["encoder.conv1.bias"] = get("encoder.conv1.bias").reshape(-1, 1)
    t["encoder.conv2.weight"] = get("encoder.conv2.weight")
    t["encoder.conv2.bias"] = get("encoder.conv2.bias").reshape(-1, 1)
    t["encoder.positional_embedding"] = get("encoder.embed_positions.weight")
    norm("encoder.layer_norm", "encoder.ln_post")
    for i in range(n_enc):
        s, d = "encoder.layers.%d" % i, "encoder.blocks.%d" % i
        norm(s + ".self_attn_layer_norm", d + ".attn_ln")
        attn(s + ".self_attn", d + ".attn")
        norm(s + ".final_layer_norm", d + ".mlp_ln")
        linear(s + ".fc1", d + ".mlp.0")
        linear(s + ".fc2", d + ".mlp.2")
    emb = get("decoder.embed_tokens.weight")
    t["decoder.token_embedding.weight"] = emb
    t["decoder.positional_embedding"] = get("decoder.embed_positions.weight")
    norm("decoder.layer_norm", "decoder.ln")
    for i in range(n_dec):
        s, d = "decoder.layers.%d" % i, "decoder.blocks.%d" % i
        norm(s + ".self_attn_layer_norm", d + ".attn_ln")
        attn(s + ".self_attn", d + ".attn")
        norm(s + ".encoder_attn_layer_norm", d + ".cross_attn_ln")
        attn(s + ".encoder_attn", d + ".cross_attn")
        norm(s + ".final_layer_norm", d + ".mlp_ln")
        linear(s + ".fc1", d + ".mlp.0")
        linear(s + ".fc2", d + ".mlp.2")
    proj = v.get("proj_out.weight")
    if proj is not None and not np.array_equal(proj, emb):
        raise ConvertError("%s: proj_out is not tied to embed_tokens; whisper.cpp cannot "
                           "represent that" % where)
    used = set()
    for name in v:
        if name.startswith(("encoder.", "decoder.")) or name == "proj_out.weight":
            used.add(name)
    unknown = sorted(set(v) - used)
    if unknown:
        raise ConvertError("%s: unexpected tensors %s (not a plain Whisper checkpoint?)"
                           % (where, ", ".join(unknown[:5])))

    n_state = int(cfg["d_model"])
    W.hparams = {
        "n_vocab": emb.shape[0],
        "n_audio_ctx": int(cfg.get("max_source_positions", t["encoder.positional_embedding"].shape[0])),
        "n_audio_state": n_state,
        "n_audio_head": int(cfg["encoder_attention_heads"]),
        "n_audio_layer": n_enc,
        "n_text_ctx": int(cfg.get("max_target_positions", t["decoder.positional_embedding"].shape[0])),
        "n_text_state": n_state,
        "n_text_head": int(cfg["decoder_attention_heads"]),
        "n_text_layer": n_dec,
        "n_mels": int(cfg.get("num_mel_bins", t["encoder.conv1.weight"].shape[1])),
    }
    if int(cfg.get("vocab_size", emb.shape[0])) != emb.shape[0]:
        raise ConvertError("%s: vocab_size %s but embed_tokens has %d rows"
                           % (cfg_path, cfg.get("vocab_size"), emb.shape[0]))
    W.vocab = regular_tokens(load_vocab_hf(model_dir))
    return W


# --------------------------------------------------------------------------
# expected layout (mirrors whisper.cpp 1.8.x whisper_model_load)
# --------------------------------------------------------------------------

def expected_tensors(hp, wtype):
    """{name: (ggml type, numpy shape)} whisper.cpp expects for these hparams."""
    F32 = GGML_TYPE_F32
    vtype = GGML_TYPE_F32 if wtype == GGML_TYPE_F32 else GGML_TYPE_F16
    na, nt = hp["n_audio_state"], hp["n_text_state"]
    e = {
        "encoder.positional_embedding": (F32, (hp["n_audio_ctx"], na)),
        "encoder.conv1.weight": (vtype, (na, hp["n_mels"], 3)),
        "encoder.conv1.bias": (F32, (na, 1)),
        "encoder.conv2.weight": (vtype, (na, na, 3)),
        "encoder.conv2.bias": (F32, (na, 1)),
        "encoder.ln_post.weight": (F32, (na,)),
        "encoder.ln_post.bias": (F32, (na,)),
        "decoder.positional_embedding": (F32, (hp["n_text_ctx"], nt)),
        "decoder.token_embedding.weight": (wtype, (hp["n_vocab"], nt)),
        "decoder.ln.weight": (F32, (nt,)),
        "decoder.ln.bias": (F32, (nt,)),
    }

    def block(p, n, cross):
        e[p + ".mlp_ln.weight"] = (F32, (n,))
        e[p + ".mlp_ln.bias"] = (F32, (n,))
        e[p + ".mlp.0.weight"] = (wtype, (4 * n, n))
        e[p + ".mlp.0.bias"] = (F32, (4 * n,))
        e[p + ".mlp.2.weight"] = (wtype, (n, 4 * n))
        e[p + ".mlp.2.bias"] = (F32, (n,))
        for a in ("attn", "cross_attn") if cross else ("attn",):
            e["%s.%s_ln.weight" % (p, a)] = (F32, (n,))
            e["%s.%s_ln.bias" % (p, a)] = (F32, (n,))
            e["%s.%s.query.weight" % (p, a)] = (wtype, (n, n))
            e["%s.%s.query.bias" % (p, a)] = (F32, (n,))
            e["%s.%s.key.weight" % (p, a)] = (wtype, (n, n))
            e["%s.%s.value.weight" % (p, a)] = (wtype, (n, n))
            e["%s.%s.value.bias" % (p, a)] = (F32, (n,))
            e["%s.%s.out.weight" % (p, a)] = (wtype, (n, n))
            e["%s.%s.out.bias" % (p, a)] = (F32, (n,))

    for i in range(hp["n_audio_layer"]):
        block("encoder.blocks.%d" % i, na, False)
    for i in range(hp["n_text_layer"]):
        block("decoder.blocks.%d" % i, nt, True)
    return e


def tensor_order(hp):
    """Tensor names in the order of OpenAI's PyTorch state_dict (the order
    whisper.cpp's own files use; the loader itself accepts any order)."""
    def block(p, cross):
        names = []
        for a in ("attn", "cross_attn") if cross else ("attn",):
            names += ["%s.%s.%s" % (p, a, x) for x in
                      ("query.weight", "query.bias", "key.weight", "value.weight",
                       "value.bias", "out.weight", "out.bias")]
            names += ["%s.%s_ln.weight" % (p, a), "%s.%s_ln.bias" % (p, a)]
        names += [p + x for x in (".mlp.0.weight", ".mlp.0.bias", ".mlp.2.weight",
                                  ".mlp.2.bias", ".mlp_ln.weight", ".mlp_ln.bias")]
        return names
    order = ["encoder.positional_embedding", "encoder.conv1.weight", "encoder.conv1.bias",
             "encoder.conv2.weight", "encoder.conv2.bias"]
    for i in range(hp["n_audio_layer"]):
        order += block("encoder.blocks.%d" % i, False)
    order += ["encoder.ln_post.weight", "encoder.ln_post.bias",
              "decoder.positional_embedding", "decoder.token_embedding.weight"]
    for i in range(hp["n_text_layer"]):
        order += block("decoder.blocks.%d" % i, True)
    order += ["decoder.ln.weight", "decoder.ln.bias"]
    return order


# --------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------

def quantize_q8_0(x):
    """Quantize float rows to ggml Q8_0 bytes. The last axis must be a multiple of 32."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] % QK8_0:
        raise ConvertError("Q8_0 needs rows that are a multiple of %d, got %d" % (QK8_0, x.shape[-1]))
    blocks = x.reshape(-1, QK8_0)
    amax = np.max(np.abs(blocks), axis=1)
    d = amax / 127.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.rint(blocks * inv[:, None])
    q = np.clip(q, -127, 127).astype(np.int8)
    out = np.empty((blocks.shape[0], Q8_0_BLOCK_BYTES), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").reshape(-1, 1).view(np.uint8)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def dequantize_q8_0(raw, shape):
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q8_0_BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(shape)


def tensor_nbytes(ttype, n_elements):
    if ttype == GGML_TYPE_F32:
        return 4 * n_elements
    if ttype == GGML_TYPE_F16:
        return 2 * n_elements
    if ttype == GGML_TYPE_Q8_0:
        return (n_elements // QK8_0) * Q8_0_BLOCK_BYTES
    raise ConvertError("unsupported ggml type %d" % ttype)


def encode(arr, ttype):
    if ttype == GGML_TYPE_F32:
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if ttype == GGML_TYPE_F16:
        return np.ascontiguousarray(arr, dtype="<f2").tobytes()
    if ttype == GGML_TYPE_Q8_0:
        return quantize_q8_0(arr)
    raise ConvertError("unsupported ggml type %d" % ttype)


def write_ggml(W, out_path, ftype_name, log=print):
    if ftype_name not in FTYPES:
        raise ConvertError("unknown --ftype %r (f16, f32, q8_0)" % ftype_name)
    ftype, wtype = FTYPES[ftype_name]
    hp = W.hparams
    if hp["n_audio_state"] != hp["n_text_state"]:
        raise ConvertError("n_audio_state %d != n_text_state %d" % (hp["n_audio_state"], hp["n_text_state"]))
    expect = expected_tensors(hp, wtype)
    have, want = set(W.tensors), set(expect)
    if have != want:
        missing = sorted(want - have)[:5]
        extra = sorted(have - want)[:5]
        raise ConvertError("tensor set does not match whisper.cpp: missing %s, extra %s" % (missing, extra))
    for name, (ttype, shape) in expect.items():
        got = tuple(W.tensors[name].shape)
        if got != shape:
            raise ConvertError("tensor %s has shape %s, whisper.cpp expects %s" % (name, got, shape))
    file_ftype = ftype
    if wtype == GGML_TYPE_Q8_0:
        file_ftype += GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR
    filters = mel_filters(hp["n_mels"], 400, 16000)
    tmp = out_path + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    try:
        _write_ggml_body(tmp, W, hp, file_ftype, filters, expect)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, out_path)
    log("whisper_convert: wrote %s (%s, %d tensors, %d tokens, %.1f MB) from %s"
        % (out_path, ftype_name, len(expect), len(W.vocab), os.path.getsize(out_path) / 1e6, W.source))


def _write_ggml_body(tmp, W, hp, file_ftype, filters, expect):
    with open(tmp, "wb") as f:
        f.write(struct.pack("<I", GGML_MAGIC))
        for k in HPARAM_ORDER:
            f.write(struct.pack("<i", int(hp[k])))
        f.write(struct.pack("<i", file_ftype))
        f.write(struct.pack("<ii", filters.shape[0], filters.shape[1]))
        f.write(filters.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(W.vocab)))
        for tok in W.vocab:
            f.write(struct.pack("<I", len(tok)))
            f.write(tok)
        for name in tensor_order(hp):
            ttype, shape = expect[name]
            arr = W.tensors[name]
            dims = list(reversed(shape))
            nb = name.encode("utf-8")
            f.write(struct.pack("<iii", len(dims), len(nb), ttype))
            f.write(struct.pack("<%di" % len(dims), *dims))
            f.write(nb)
            f.write(encode(arr, ttype))


# --------------------------------------------------------------------------
# reading back (--check)
# --------------------------------------------------------------------------

def read_ggml(path, load_data=False):
    """Parse a ggml Whisper file. Returns dict with hparams, filters, vocab, tensors.

    tensors: name -> (ggml type, numpy shape, data offset[, decoded float32 array]).
    """
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    cur = _Cursor(buf, path)
    magic = cur.unpack("<I")
    if magic != GGML_MAGIC:
        raise ConvertError("%s: bad magic 0x%08x" % (path, magic))
    hp = {k: cur.unpack("<i") for k in HPARAM_ORDER}
    raw_ftype = cur.unpack("<i")
    hp["ftype"] = raw_ftype % GGML_QNT_VERSION_FACTOR
    hp["qntvr"] = raw_ftype // GGML_QNT_VERSION_FACTOR
    n_mel, n_fft = cur.unpack("<i"), cur.unpack("<i")
    start = cur.take(4 * n_mel * n_fft)
    filters = np.frombuffer(buf, dtype="<f4", count=n_mel * n_fft, offset=start).reshape(n_mel, n_fft)
    n_tok = cur.unpack("<i")
    vocab = []
    for _ in range(n_tok):
        ln = cur.unpack("<I")
        s = cur.take(ln)
        vocab.append(bytes(buf[s:s + ln]))
    tensors = {}
    while cur.off < len(buf):
        n_dims, name_len, ttype = cur.unpack("<i"), cur.unpack("<i"), cur.unpack("<i")
        if not 1 <= n_dims <= 4:
            raise ConvertError("%s: bad n_dims %d at byte %d" % (path, n_dims, cur.off))
        dims = [cur.unpack("<i") for _ in range(n_dims)]
        s = cur.take(name_len)
        name = bytes(buf[s:s + name_len]).decode("utf-8")
        shape = tuple(reversed(dims))
        n = int(np.prod(dims))
        nbytes = tensor_nbytes(ttype, n)
        off = cur.take(nbytes)
        if name in tensors:
            raise ConvertError("%s: duplicate tensor %s" % (path, name))
        entry = (ttype, shape, off)
        if load_data:
            raw = bytes(buf[off:off + nbytes])
            if ttype == GGML_TYPE_F32:
                arr = np.frombuffer(raw, dtype="<f4").reshape(shape)
            elif ttype == GGML_TYPE_F16:
                arr = np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(shape)
            else:
                arr = dequantize_q8_0(raw, shape)
            entry = entry + (arr,)
        tensors[name] = entry
    return {"hparams": hp, "filters": np.array(filters), "vocab": vocab, "tensors": tensors,
            "size": len(buf)}


def check_file(path, log=print):
    """Validate a ggml Whisper file against whisper.cpp's expectations. Returns problems list."""
    g = read_ggml(path)
    hp = g["hparams"]
    problems = []
    log("%s: %d bytes" % (path, g["size"]))
    for k in HPARAM_ORDER:
        log("  %-14s = %d" % (k, hp[k]))
    log("  %-14s = %d (qntvr %d)" % ("ftype", hp["ftype"], hp["qntvr"]))
    wtype = FTYPE_TO_WTYPE.get(hp["ftype"])
    if wtype is None:
        problems.append("ftype %d not one of f32/f16/q8_0" % hp["ftype"])
        wtype = GGML_TYPE_F16
    if hp["n_audio_state"] != hp["n_text_state"]:
        problems.append("n_audio_state != n_text_state")
    n_mel, n_fft = g["filters"].shape
    log("  mel filters    = %d x %d" % (n_mel, n_fft))
    if n_mel != hp["n_mels"] or n_fft != 201:
        problems.append("mel filters %dx%d, expected %dx201" % (n_mel, n_fft, hp["n_mels"]))
    log("  vocab tokens   = %d (+%d special generated by whisper.cpp)"
        % (len(g["vocab"]), hp["n_vocab"] - len(g["vocab"])))
    if len(g["vocab"]) > hp["n_vocab"] or len(g["vocab"]) < 50256:
        problems.append("%d vocabulary tokens for n_vocab %d" % (len(g["vocab"]), hp["n_vocab"]))
    expect = expected_tensors(hp, wtype)
    log("  tensors        = %d (expected %d)" % (len(g["tensors"]), len(expect)))
    counts = {}
    for name, (ttype, shape, _off) in g["tensors"].items():
        counts[ttype] = counts.get(ttype, 0) + 1
        if name not in expect:
            problems.append("unknown tensor %s" % name)
            continue
        et, es = expect[name]
        if tuple(shape) != es:
            problems.append("%s: shape %s, expected %s" % (name, shape, es))
        if tensor_nbytes(ttype, int(np.prod(shape))) != tensor_nbytes(et, int(np.prod(es))):
            problems.append("%s: type %s, expected %s" % (name, TYPE_NAMES.get(ttype, ttype),
                                                          TYPE_NAMES[et]))
    for name in sorted(set(expect) - set(g["tensors"])):
        problems.append("missing tensor %s" % name)
    log("  tensor types   = %s" % ", ".join("%s: %d" % (TYPE_NAMES.get(k, k), c)
                                            for k, c in sorted(counts.items())))
    if problems:
        for p in problems[:20]:
            log("  PROBLEM: %s" % p)
        log("%s: INVALID (%d problems)" % (path, len(problems)))
    else:
        log("%s: OK" % path)
    return problems


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert Whisper (CTranslate2 or Hugging Face) to ggml.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--ct2", metavar="DIR", help="CTranslate2 Whisper model directory")
    src.add_argument("--hf", metavar="DIR", help="Hugging Face Whisper checkpoint directory")
    src.add_argument("--check", metavar="FILE", help="validate a ggml Whisper file")
    ap.add_argument("--out", metavar="FILE", help="output ggml file")
    ap.add_argument("--ftype", default="f16", choices=sorted(FTYPES), help="weight type (default f16)")
    args = ap.parse_args(argv)
    try:
        if args.check:
            return 1 if check_file(args.check) else 0
        if not args.out:
            ap.error("--out is required with --ct2/--hf")
        W = from_ct2(args.ct2) if args.ct2 else from_hf(args.hf)
        write_ggml(W, args.out, args.ftype)
        return 0
    except ConvertError as e:
        sys.stderr.write("whisper_convert: error: %s\n" % e)
        return 1
    except (OSError, ValueError, KeyError) as e:
        sys.stderr.write("whisper_convert: error: %s: %s\n" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
