#!/usr/bin/env python3
"""Independent reference for Earshot's sentence embeddings (numpy only).

Computes all-MiniLM-L6-v2 sentence embeddings the way sentence-transformers
does for this model (BERT WordPiece tokenisation with lower-casing and
accent stripping, truncation to 256 tokens, a 6-layer BERT encoder, mean
pooling over the attention mask, L2 normalisation), written from the
published architecture with nothing but numpy and the standard library, and
writes them to tests/embed_vectors.json for tests/embed.rs to compare the
Rust (candle) implementation against.

    scripts/embed_reference.py [MODEL_DIR] [OUT_JSON]

MODEL_DIR defaults to models/all-minilm-l6-v2 (scripts/fetch-embeddings),
OUT_JSON to tests/embed_vectors.json. Every sentence is run on its own (no
padding), in float64, so the Rust batch path (padded, float32) is checked
against an unpadded, higher-precision computation. Needs numpy: Debian's
python3-numpy (scripts/setup installs it) or any venv with numpy.
"""

import json
import math
import os
import struct
import sys
import unicodedata

try:
    import numpy as np
except ImportError:
    sys.exit(
        "embed_reference.py: needs numpy (apt-get install python3-numpy and run it with "
        "/usr/bin/python3, or use a venv with numpy)"
    )

MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length

# The fixed sentences: the semantic check, scripted (ground-truth) lines of
# the helpline and billing calls, what Whisper actually heard for some of
# them (tests/analysis/*.session.json), and edge cases for the tokeniser
# (accents, punctuation, CJK, control characters, empty, over-long).
_HELPLINE_SCRIPT = (
    "Thank you for calling the child helpline, my name is Grace. How can I help you today? "
    "Hello. My name is Amina Yusuf and I am calling from Mombasa. "
    "Thank you Amina. I am here to listen. Can you tell me what happened? "
    "My neighbour's daughter is twelve years old. She is being beaten at home and she is "
    "not going to school. I understand, that sounds very difficult. Is the child in danger "
    "right now? Yes, I think she is not safe. Her father hits her every night. Please hold "
    "for a moment while I contact the child protection officer. Thank you for holding. I "
    "have opened case number four five seven two one for you. Thank you. You can call me "
    "back on zero seven one two, three four five, six seven eight. A social worker from the "
    "Mombasa children's office will visit the family tomorrow. Is there anything else I can "
    "help you with? No, thank you so much for your help. Thank you for calling. Take care, "
    "goodbye."
)
SENTENCES = [
    "I was charged twice on my bill",
    "there is a duplicate payment on my invoice",
    "my neighbour's daughter is being beaten at home",
    "Yes, I think she is not safe. Her father hits her every night.",
    "her father had her every night.",
    "My name is Amina Yousas and I am calling from Mount Basa.",
    "I can see a duplicate payment of $85 on the 3rd of March.",
    "this is the third time I have called about it, this is the third time I have called "
    "about it, this is the third time I have called about it, this",
    "You can call me back on 0 7 1 2 3 4 5.",
    "knows that is all.",
    "Café NAÏVE résumé — Ünïcödé déjà-vu!!! (e-mail: grace@helpline.example) 电话号码",
    "tab\there\u0000and\u200bzero-width\ufffd  spaces\r\nnew line",
    "x",
    "",
    # Over-long: the helpline script twice, well past 256 tokens.
    _HELPLINE_SCRIPT + " " + _HELPLINE_SCRIPT,
]


# --- safetensors --------------------------------------------------------


def read_safetensors(path):
    """Name -> numpy array, from the documented layout: an 8-byte
    little-endian header length, a JSON header (dtype, shape, data_offsets
    relative to the end of the header) and the raw little-endian tensors."""
    dtypes = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(raw[base + start : base + end], dtype=dtypes[info["dtype"]])
        out[name] = arr.reshape(info["shape"])
    return out


# --- BERT tokenisation (BasicTokenizer + WordPiece) ---------------------


def _is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def _is_whitespace(c):
    if c in " \t\n\r":
        return True
    return unicodedata.category(c) == "Zs"


def _is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def _is_cjk(cp):
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def basic_tokenize(text):
    # clean: drop NUL, U+FFFD and control characters; whitespace -> space
    cleaned = []
    for c in text:
        if ord(c) == 0 or ord(c) == 0xFFFD or _is_control(c):
            continue
        cleaned.append(" " if _is_whitespace(c) else c)
    text = "".join(cleaned)
    # CJK ideographs become words of their own
    text = "".join(" %s " % c if _is_cjk(ord(c)) else c for c in text)
    # strip accents (NFD, drop non-spacing marks), then lower-case
    text = unicodedata.normalize("NFD", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Mn").lower()
    words = []
    for chunk in text.split():
        cur = ""
        for c in chunk:
            if _is_punctuation(c):
                if cur:
                    words.append(cur)
                    cur = ""
                words.append(c)
            else:
                cur += c
        if cur:
            words.append(cur)
    return words


def wordpiece(word, vocab, unk_id):
    if len(word) > 100:
        return [unk_id]
    ids = []
    start = 0
    while start < len(word):
        end = len(word)
        found = None
        while start < end:
            piece = word[start:end]
            if start > 0:
                piece = "##" + piece
            if piece in vocab:
                found = vocab[piece]
                break
            end -= 1
        if found is None:
            return [unk_id]
        ids.append(found)
        start = end
    return ids


def tokenize(text, vocab):
    ids = []
    for w in basic_tokenize(text):
        ids.extend(wordpiece(w, vocab, vocab["[UNK]"]))
    ids = ids[: MAX_TOKENS - 2]
    return [vocab["[CLS]"]] + ids + [vocab["[SEP]"]]


# --- the encoder ----------------------------------------------------------


_erf = np.vectorize(math.erf)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def linear(x, t, name):
    return x @ t[name + ".weight"].T + t[name + ".bias"]


def encode(ids, t, cfg):
    n = len(ids)
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    hd = h // heads
    eps = cfg["layer_norm_eps"]
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][:n]
        + t["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i

        def split(y):
            return y.reshape(n, heads, hd).transpose(1, 0, 2)

        q = split(linear(x, t, p + "attention.self.query"))
        k = split(linear(x, t, p + "attention.self.key"))
        v = split(linear(x, t, p + "attention.self.value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, h)
        a = linear(ctx, t, p + "attention.output.dense")
        x = layer_norm(
            a + x,
            t[p + "attention.output.LayerNorm.weight"],
            t[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        m = linear(x, t, p + "intermediate.dense")
        m = 0.5 * m * (1.0 + _erf(m / math.sqrt(2.0)))  # exact (erf) GELU
        o = linear(m, t, p + "output.dense")
        x = layer_norm(
            o + x, t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], eps
        )
    pooled = x.mean(0)  # mean over the tokens (all real: no padding here)
    return pooled / np.linalg.norm(pooled)


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/all-minilm-l6-v2"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/embed_vectors.json"
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    with open(os.path.join(model_dir, "1_Pooling", "config.json")) as f:
        pooling = json.load(f)
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    tensors = {
        k: v.astype(np.float64)
        for k, v in read_safetensors(os.path.join(model_dir, "model.safetensors")).items()
        if v.dtype.kind == "f"
    }
    vectors = []
    for s in SENTENCES:
        ids = tokenize(s, vocab)
        emb = encode(ids, tensors, cfg)
        vectors.append(
            {"text": s, "ids": ids, "embedding": [float("%.7g" % x) for x in emb]}
        )
        print("embed_reference: %3d tokens  %s" % (len(ids), s[:60].encode("unicode_escape").decode()))
    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "made_by": "scripts/embed_reference.py (numpy %s, float64)" % np.__version__,
        "max_tokens": MAX_TOKENS,
        "vectors": vectors,
    }
    # One vector per line: readable diffs when the reference is remade.
    lines = ["{"]
    for k in ("model", "made_by", "max_tokens"):
        lines.append(" %s: %s," % (json.dumps(k), json.dumps(doc[k])))
    lines.append(' "vectors": [')
    for i, v in enumerate(vectors):
        lines.append("  {")
        lines.append('   "text": %s,' % json.dumps(v["text"], ensure_ascii=False))
        lines.append('   "ids": %s,' % json.dumps(v["ids"]))
        lines.append('   "embedding": %s' % json.dumps(v["embedding"]))
        lines.append("  }" + ("," if i + 1 < len(vectors) else ""))
    lines.append(" ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == doc
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print("embed_reference: wrote %d vectors to %s" % (len(vectors), out))


if __name__ == "__main__":
    main()
