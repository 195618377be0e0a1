#!/usr/bin/env python3
"""Build the demonstration model of Earshot's ONNX translation slot.

    scripts/make_onnx_mt.py DICTD_BASE OUT_DIR

DICTD_BASE is a dictd dictionary without its suffix, e.g.
/usr/share/dictd/freedict-swh-eng (Debian's dict-freedict-swh-eng: FreeDict
Swahili-English, GPL-2+, 2,675 headwords). Writes OUT_DIR/ with the files a
Hugging Face Optimum export of a MarianMT (OPUS-MT) model has, with the same
graph inputs and outputs, so that it runs through exactly the code path a
user's real export runs through:

  encoder_model.onnx   input_ids, attention_mask [batch, src] int64
                       -> last_hidden_state [batch, src, K] float
  decoder_model.onnx   input_ids [batch, tgt], encoder_attention_mask
                       [batch, src], encoder_hidden_states
                       -> logits [batch, tgt, vocab]
  tokenizer.json       HF tokenizers: lowercase, whitespace/punctuation
                       split, word-level vocabulary, "</s>" appended
  config.json          decoder_start_token_id, eos_token_id, pad_token_id,
                       max_length, vocab_size (Marian's ids: </s> = 0,
                       <unk> = 1, <pad> = the last id, which also starts
                       decoding)
  translation.json     source_languages ["sw"], target_language "en", model
  report.json          what went in

Why a constructed model: no trained sequence-to-sequence translation model
(OPUS-MT or other) is published on a package registry this project can
reach, and model hubs are not reachable. So this graph is not trained: it
is a word-for-word lexical translator written as a transformer-shaped
encoder/decoder pair. The encoder maps each source token to the ids of its
dictionary gloss (first sense, at most K target words, -1 padded, as
floats: its "hidden state"); the decoder flattens the glosses of the whole
sentence, and at decoder position j gives a one-hot logit row for the
j-th target token (then </s>). Greedy decoding of it is therefore exactly
the gloss sequence. Words the dictionary does not have are copied when
they are in the vocabulary, else dropped (<unk>). A demonstration: it
proves the slot end to end (tokenizer, encoder, autoregressive decoder
loop, detokenisation); it is not a translation model.
"""

import gzip
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_onnx_models  # noqa: E402  (the graph builder)

OPSET = make_onnx_models.OPSET
IR_VERSION = make_onnx_models.IR_VERSION
K = 4  # target words per source word, at most
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
WORD = re.compile(r"[a-z][a-z']*")


def b64(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def read_dictd(base):
    """{headword: first gloss (list of lower-case English words)}."""
    with gzip.open(base + ".dict.dz") as f:
        data = f.read()
    out = {}
    with open(base + ".index", encoding="utf-8") as f:
        for line in f:
            head, off, length = line.rstrip("\n").split("\t")
            if head.startswith("00database"):
                continue
            body = data[b64(off) : b64(off) + b64(length)].decode("utf-8")
            gloss = first_gloss(body)
            head = head.lower()
            if gloss and WORD.fullmatch(head) and head not in out:
                out[head] = gloss
            # Plurals given in the entry ("(pl: {watoto})") take the same gloss.
            for pl in re.findall(r"\(pl: \{([^}]+)\}\)", body.split("\n", 1)[0]):
                pl = pl.lower()
                if gloss and WORD.fullmatch(pl) and pl not in out:
                    out[pl] = gloss
    return out


def first_gloss(body):
    """The first sense of a FreeDict entry: the first non-empty line after
    the headword line that is not a sense number, up to the first comma,
    semicolon or parenthesis."""
    for line in body.split("\n")[1:]:
        line = line.strip()
        if not line or re.fullmatch(r"\d+\.", line) or line.startswith(("See also", "Synonyms")):
            continue
        line = line.lstrip("; ")
        line = re.split(r"[,;(]", line)[0].strip().lower()
        words = WORD.findall(line)
        if words:
            return words[:K]
    return None


class Graph(make_onnx_models.Graph):
    def const(self, name, arr):
        # Scalars stay scalars (OneHot's depth must be one).
        self.inits.append(numpy_helper.from_array(np.asarray(arr) if np.ndim(arr) == 0 else np.ascontiguousarray(arr), name))
        return name


def model(g, inputs, outputs, name):
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="earshot scripts/make_onnx_mt.py")
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m)
    return m


def encoder(table):
    g = Graph()
    g.const("gloss_table", table.astype(np.float32))
    g.const("minus_one", np.array(-1.0, dtype=np.float32))
    gl = g.op("Gather", ["gloss_table", "input_ids"], axis=0)  # [b, s, K]
    keep = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], to=TensorProto.BOOL), g.const("axis_last", np.array([-1], dtype=np.int64))])
    g.op("Where", [keep, gl, "minus_one"], out="last_hidden_state")
    ins = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "src"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "src"]),
    ]
    outs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "src", K])]
    return model(g, ins, outs, "lexical-encoder")


def decoder(vocab_size, eos):
    g = Graph()
    zero = g.const("zero_i", np.array(0, dtype=np.int64))
    row = g.op("Gather", ["encoder_hidden_states", zero], axis=0)  # [s, K] (batch 1)
    flat = g.op("Reshape", [row, g.const("flat_shape", np.array([-1], dtype=np.int64))])
    cond = g.op("GreaterOrEqual", [flat, g.const("zero_f", np.array(0.0, dtype=np.float32))])
    glosses = g.op("Compress", [flat, cond], axis=0)  # [n]
    t = g.op("Slice", [g.op("Shape", ["input_ids"]), g.const("one", np.array([1], dtype=np.int64)), g.const("two", np.array([2], dtype=np.int64))])
    tail = g.op("ConstantOfShape", [t], value=numpy_helper.from_array(np.array([float(eos)], dtype=np.float32)))
    seq = g.op("Concat", [glosses, tail], axis=0)  # [n + t]
    first = g.op("Slice", [seq, g.const("start0", np.array([0], dtype=np.int64)), t])
    ids = g.op("Cast", [first], to=TensorProto.INT64)
    onehot = g.op(
        "OneHot",
        [ids, g.const("depth", np.array(vocab_size, dtype=np.int64)), g.const("off_on", np.array([-10.0, 10.0], dtype=np.float32))],
        axis=-1,
    )
    g.op("Unsqueeze", [onehot, g.const("axis0", np.array([0], dtype=np.int64))], out="logits")
    ins = [
        helper.make_tensor_value_info("encoder_attention_mask", TensorProto.INT64, ["batch", "src"]),
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tgt"]),
        helper.make_tensor_value_info("encoder_hidden_states", TensorProto.FLOAT, ["batch", "src", K]),
    ]
    outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "tgt", vocab_size])]
    return model(g, ins, outs, "lexical-decoder")


def tokenizer_json(vocab):
    """A word-level HF tokenizer: NFKC + lowercase, split on whitespace and
    punctuation, "</s>" appended (as Marian's tokenizer does)."""
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for t in ("</s>", "<unk>", "<pad>")
        ],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}},
            ],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [vocab["</s>"]], "tokens": ["</s>"]}},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    base, out = sys.argv[1], sys.argv[2]
    lex = read_dictd(base)
    target_words = sorted({w for g in lex.values() for w in g})
    words = sorted(set(lex) | set(target_words))
    vocab = {"</s>": 0, "<unk>": 1}
    for w in words:
        vocab[w] = len(vocab)
    vocab["<pad>"] = len(vocab)
    v = len(vocab)
    table = -np.ones((v, K), dtype=np.int64)
    for w, i in vocab.items():
        if w in lex:
            gloss = [vocab[x] for x in lex[w]]
        elif w in ("</s>", "<unk>", "<pad>"):
            gloss = []
        else:
            gloss = [i]  # a target-side word: copied
        table[i, : len(gloss)] = gloss
    enc, dec = encoder(table), decoder(v, vocab["</s>"])

    # Check the pair with onnx's reference evaluator on a sentence before writing.
    from onnx.reference import ReferenceEvaluator

    sent = [w for w in ("habari", "mtoto", "shule") if w in vocab]
    ids = np.array([[vocab[w] for w in sent] + [0]], dtype=np.int64)
    (hidden,) = ReferenceEvaluator(enc).run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    want = [x for w in sent for x in lex[w]]
    dec_ids = [vocab["<pad>"]]
    dec_ref = ReferenceEvaluator(dec)
    for _ in range(len(want) + 3):
        (logits,) = dec_ref.run(None, {"input_ids": np.array([dec_ids]), "encoder_attention_mask": np.ones_like(ids), "encoder_hidden_states": hidden})
        nxt = int(logits[0, -1].argmax())
        if nxt == vocab["</s>"]:
            break
        dec_ids.append(nxt)
    inv = {i: w for w, i in vocab.items()}
    got = [inv[i] for i in dec_ids[1:]]
    print("make_onnx_mt: %s -> %s" % (" ".join(sent), " ".join(got)))
    if got != want:
        sys.exit("make_onnx_mt: the graphs do not decode the glosses %r" % want)

    docs = {
        "tokenizer.json": tokenizer_json(vocab),
        "config.json": {
            "model_type": "marian",
            "decoder_start_token_id": vocab["<pad>"],
            "eos_token_id": vocab["</s>"],
            "pad_token_id": vocab["<pad>"],
            "max_length": 512,
            "vocab_size": v,
        },
        "translation.json": {
            "model": "earshot-lexical-sw-en-demo",
            "source_languages": ["sw"],
            "target_language": "en",
            "description": "word-for-word lexical translator built from FreeDict Swahili-English "
            "(scripts/make_onnx_mt.py); a demonstration of the ONNX translation slot, not a trained model",
        },
        "report.json": {"dictionary": base, "entries": len(lex), "vocab_size": v, "max_gloss_words": K, "check": {"source": sent, "decoded": got}},
    }
    make_onnx_models.write_model_dir(out, {"encoder_model.onnx": enc, "decoder_model.onnx": dec}, docs)
    print("make_onnx_mt: wrote %s (%d dictionary entries, vocabulary %d)" % (out, len(lex), v))


if __name__ == "__main__":
    main()
