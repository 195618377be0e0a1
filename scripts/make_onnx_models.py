#!/usr/bin/env python3
"""Build Earshot's ONNX models from registry material only (numpy + onnx).

    scripts/make_onnx_models.py [MINILM_DIR] [OUT_DIR]

MINILM_DIR defaults to models/all-minilm-l6-v2 (scripts/fetch-embeddings),
OUT_DIR to models/. Writes

  OUT_DIR/minilm-onnx/      model.onnx (all-MiniLM-L6-v2 as an ONNX graph:
                            inputs input_ids, attention_mask [batch, seq]
                            int64; output last_hidden_state [batch, seq, 384]),
                            tokenizer.json, sentence_bert_config.json
  OUT_DIR/onnx-ner-demo/    model.onnx (the same encoder plus a linear
                            token-classification head; output logits
                            [batch, seq, labels]), tokenizer.json,
                            labels.json (id2label, BIO tags), report.json

The encoder graph is built by hand with onnx.helper from the safetensors
weights, following the math of scripts/embed_reference.py (word + position
+ token-type embeddings, LayerNorm, 6 post-norm encoder layers with exact
erf GELU, LayerNorm eps from config.json). It is checked against that numpy
forward pass with onnx's own reference evaluator before it is written.

The head is a softmax regression over the encoder's token vectors, trained
here with numpy on a synthetic tagged corpus ("my name is <NAME>", "I am
calling from <PLACE>", ...; first names written below, places from
config/gazetteer/locations.txt, organisations from organizations.txt). The
names and places of the repository's test calls (Grace, Amina, David,
Mombasa, Acme Energy, ...) are kept out of the training corpus, so that the
Rust tests on those calls see unseen names. Fixed seeds: the same inputs
give the same model. A held-out split (other names, other places) gives the
token F1 printed and stored in report.json.

It is a demonstration model: a linear head on frozen sentence-embedding
features, trained on a few templates. It proves the ONNX slot end to end; it
is not a production NER model.
"""

import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import embed_reference as ref  # noqa: E402  (safetensors reader, tokenizer, numpy BERT)

SEED = 20261121
CLASS_WEIGHT_CAP = 2.0  # inverse-frequency class weights, capped: recall vs precision
OPSET = 17  # LayerNormalization is an ONNX op from 17 on
IR_VERSION = 8  # what opset 17 came with; every current ONNX Runtime reads it
MAX_TOKENS = 256

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]

# Kept out of the training corpus: the people, places and organisations of
# tests/analysis/*.session.json (and their misheard spellings).
HELD_OUT_FROM_TRAINING = {
    "grace", "amina", "yusuf", "yousas", "david", "mombasa", "mambasa", "acme",
    "acme energy", "mount basa",
}

FIRST_NAMES = """
Abdi Achieng Ada Adam Adebayo Adriana Ahmed Aisha Akinyi Alan Alice Ali Amani
Amara Amir Ana Andrew Anna Anthony Asha Atieno Baraka Beatrice Ben Bilal Brian
Carlos Caroline Catherine Charles Chege Chloe Chris Daniel Daudi Deborah Dennis
Diana Edwin Elena Elijah Elizabeth Emeka Emily Emmanuel Eric Esther Faith Farah
Fatima Felix Florence George Grace Hamisi Hannah Hassan Helen Henry Ibrahim
Imani Irene Isaac Jabari James Jane Jasmine Jason Joan John Joseph Joy Juma
Kamau Karim Kevin Khadija Kofi Lara Laura Leila Lucy Lydia Mary Maria Mark
Martha Michael Miriam Mohamed Moses Musa Nadia Nala Naomi Nia Njeri Noah Nora
Odhiambo Olivia Omar Otieno Patrick Paul Peter Priya Rachel Rahul Rose Ruth
Salim Samuel Sara Simon Sofia Stephen Susan Tariq Thomas Tom Wanjiru Wairimu
Yasmin Yusuf Zainab Zawadi Zuri Amina David Halima Kwame Chinedu Mercy Lilian
""".split()

SURNAMES = """
Achieng Adeyemi Ali Bakari Brown Chebet Davies Hassan Juma Kamau Kariuki Kiprop
Mohammed Mutua Mwangi Njoroge Nyambura Ochieng Odera Omondi Onyango Otieno Smith
Wafula Wanjala Williams Yusuf Okafor Mensah Khan Patel Garcia Silva
""".split()

# Sentences with a slot; {P} person, {L} place, {O} organisation.
TEMPLATES = [
    "my name is {P}.",
    "my name is {P} and I am calling from {L}.",
    "hello, my name is {P}.",
    "hi, this is {P} speaking.",
    "this is {P} speaking, how can I help you?",
    "good morning, you are speaking to {P}.",
    "thank you, {P}.",
    "thank you {P}, I am here to listen.",
    "I am {P}.",
    "I'm {P} and I live in {L}.",
    "can I speak to {P} please?",
    "my daughter {P} is twelve years old.",
    "my son {P} is not going to school.",
    "her name is {P}.",
    "his name is {P} and he lives in {L}.",
    "my neighbour {P} called me yesterday.",
    "{P} told me what happened.",
    "please ask {P} to call me back.",
    "I am calling from {L}.",
    "I live in {L}.",
    "we are in {L} right now.",
    "she was taken to {L} last week.",
    "a social worker from {L} will visit the family.",
    "the office in {L} is closed today.",
    "I moved to {L} last year.",
    "he works in {L}.",
    "is that near {L}?",
    "I am from {L}.",
    "thank you for calling {O}.",
    "welcome to {O}, my name is {P}.",
    "I work for {O}.",
    "I got a letter from {O}.",
    "you have reached {O}, this is {P}.",
    "the officer from {O} said they would call.",
    "{P} from {O} will call you back.",
]

# No entities: the other things callers and agents say.
# No entities: other things callers and agents say (written for this
# corpus; none is a line of the repository's test calls), numbers included
# so that digits are not taken for names.
PLAIN = [
    "Good afternoon, what can I do for you?",
    "Hello?",
    "Take your time, I am listening.",
    "What happened after that?",
    "He shouts at us when he is drunk.",
    "That must be very hard for you.",
    "Are you somewhere safe at the moment?",
    "No, I do not think so.",
    "One moment please, I will check.",
    "Sorry to keep you waiting.",
    "I will open a report for you.",
    "Is this the best number to reach you on?",
    "Do you need anything else from us?",
    "That is all, thanks a lot.",
    "Bye for now, look after yourself.",
    "There is a mistake on my statement.",
    "Could you give me your reference please?",
    "I am going to transfer you now.",
    "Thanks for your patience.",
    "We will sort it out this week.",
    "That is good to hear.",
    "Enjoy the rest of your day.",
    "See you.",
    "My father hits me every night.",
    "I do not feel safe at home.",
    "The teacher said nothing.",
    "We will send someone tomorrow.",
    "It happened on Monday morning.",
    "I am really upset about this.",
    "Can you repeat that please?",
    "Okay, I understand.",
    "She is fifteen years old.",
    "He did not come home last night.",
    "I would like to make a complaint.",
    "The police did not help us.",
    "My mother is sick and cannot work.",
    "Are these calls recorded?",
    "Calls are recorded for training and quality.",
    "Yes, that is right.",
    "Sorry, I did not hear you.",
    "Let me look into that for you.",
    "The money should be back in a few days.",
    "Can I have your date of birth please?",
    "I have been waiting for a long time.",
    "This is the second time this month.",
    "Have a nice evening.",
    "Thank you for your call.",
    "I see, and when did it start?",
]

# No entities either: templates with numbers ({D} digits said one by one,
# {N} a number, {W} a number word).
NUMERIC = [
    "my number is {D}.",
    "you can reach me on {D}.",
    "the reference number is {D}.",
    "yes, it is {D}",
    "it is {D}, I think.",
    "{D}",
    "I paid ${N} last week.",
    "the bill was {N} dollars.",
    "she is {N} years old.",
    "it will take {W} days.",
    "I called {W} times.",
    "on the {N}th of the month.",
]
NUMBER_WORDS = "one two three four five six seven eight nine ten twelve twenty".split()


# --- gazetteers -----------------------------------------------------------


def gazetteer(path):
    """Canonical names of a gazetteer file (see its header)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name = line.split("|", 1)[0].strip().lstrip("?").strip()
            if name:
                out.append(name)
    return out


# --- the ONNX graph ---------------------------------------------------------


class Graph:
    def __init__(self):
        self.nodes = []
        self.inits = []
        self.n = 0

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(self, op_type, inputs, out=None, **attrs):
        self.n += 1
        out = out or "%s_%d" % (op_type.lower(), self.n)
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def build_encoder(g, t, cfg):
    """Adds the BERT encoder to g; returns the name of the last hidden state."""
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    hd = h // heads
    eps = float(cfg["layer_norm_eps"])
    if cfg.get("hidden_act") != "gelu":
        sys.exit("make_onnx_models: only the erf GELU is built (hidden_act %r)" % cfg.get("hidden_act"))
    f32 = lambda name: t[name].astype(np.float32)  # noqa: E731

    def linear(x, name):
        w = g.const(name + ".weight_t", f32(name + ".weight").T.copy())
        b = g.const(name + ".bias", f32(name + ".bias"))
        return g.op("Add", [g.op("MatMul", [x, w]), b])

    def layer_norm(x, name):
        return g.op(
            "LayerNormalization",
            [x, g.const(name + ".weight", f32(name + ".weight")), g.const(name + ".bias", f32(name + ".bias"))],
            axis=-1,
            epsilon=eps,
        )

    # Embeddings: word + position (0..seq) + token type 0.
    word = g.op("Gather", [g.const("word_embeddings", f32("embeddings.word_embeddings.weight")), "input_ids"])
    # The first seq rows of the position table: Slice(table, [0], [seq]).
    seq = g.op("Shape", ["input_ids"], start=1, end=2)  # [seq], 1-D
    pos = g.op(
        "Slice",
        [
            g.const("position_embeddings", f32("embeddings.position_embeddings.weight")),
            g.const("zero_1d", np.array([0], dtype=np.int64)),
            seq,
            g.const("axis0_1d", np.array([0], dtype=np.int64)),
        ],
    )
    x = g.op("Add", [word, pos])
    x = g.op("Add", [x, g.const("token_type_0", f32("embeddings.token_type_embeddings.weight")[0].copy())])
    x = layer_norm(x, "embeddings.LayerNorm")

    # Additive attention mask [batch, 1, 1, seq]: 0 for tokens, -1e9 for padding.
    m = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    m = g.op("Sub", [g.const("one_f32", np.array(1.0, dtype=np.float32)), m])
    m = g.op("Mul", [m, g.const("neg_big", np.array(-1e9, dtype=np.float32))])
    mask = g.op("Unsqueeze", [m, g.const("axes_1_2", np.array([1, 2], dtype=np.int64))])

    heads_shape = g.const("heads_shape", np.array([0, 0, heads, hd], dtype=np.int64))
    merged_shape = g.const("merged_shape", np.array([0, 0, h], dtype=np.int64))
    scale = g.const("attn_scale", np.array(1.0 / math.sqrt(hd), dtype=np.float32))
    half = g.const("half", np.array(0.5, dtype=np.float32))
    inv_sqrt2 = g.const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), dtype=np.float32))
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        q = g.op("Reshape", [linear(x, p + "attention.self.query"), heads_shape])
        k = g.op("Reshape", [linear(x, p + "attention.self.key"), heads_shape])
        v = g.op("Reshape", [linear(x, p + "attention.self.value"), heads_shape])
        q = g.op("Transpose", [q], perm=[0, 2, 1, 3])  # [b, heads, seq, hd]
        k = g.op("Transpose", [k], perm=[0, 2, 3, 1])  # [b, heads, hd, seq]
        v = g.op("Transpose", [v], perm=[0, 2, 1, 3])
        s = g.op("Mul", [g.op("MatMul", [q, k]), scale])
        s = g.op("Softmax", [g.op("Add", [s, mask])], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [s, v])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merged_shape])
        a = linear(ctx, p + "attention.output.dense")
        x = layer_norm(g.op("Add", [a, x]), p + "attention.output.LayerNorm")
        mid = linear(x, p + "intermediate.dense")
        erf = g.op("Erf", [g.op("Mul", [mid, inv_sqrt2])])
        gelu = g.op("Mul", [g.op("Mul", [mid, half]), g.op("Add", [erf, "one_f32"])])
        o = linear(gelu, p + "output.dense")
        x = layer_norm(g.op("Add", [o, x]), p + "output.LayerNorm")
    return x


def make_model(g, outputs, name):
    graph = helper.make_graph(
        g.nodes,
        name,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        outputs,
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="earshot scripts/make_onnx_models.py",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def encoder_model(t, cfg):
    g = Graph()
    x = build_encoder(g, t, cfg)
    g.op("Identity", [x], out="last_hidden_state")
    out = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", cfg["hidden_size"]]
    )
    return make_model(g, [out], "all-MiniLM-L6-v2")


def ner_model(t, cfg, w, b):
    g = Graph()
    x = build_encoder(g, t, cfg)
    logits = g.op("MatMul", [x, g.const("classifier.weight_t", w.astype(np.float32))])
    g.op("Add", [logits, g.const("classifier.bias", b.astype(np.float32))], out="logits")
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", len(LABELS)])
    return make_model(g, [out], "earshot-ner-demo")


# --- the numpy encoder (token vectors for training) --------------------------


def erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): vectorised, for the
    # training features only; the exported graph uses ONNX's exact Erf.
    s = np.sign(x)
    a = np.abs(x)
    u = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * u - 1.453152027) * u) + 1.421413741) * u - 0.284496736) * u + 0.254829592) * u * np.exp(-a * a)
    return s * y


def token_vectors(batch, t, cfg):
    """The last hidden states [batch, seq, hidden] of unpadded sentences of
    one length (ids [batch, seq]): the math of embed_reference.encode,
    batched, with a vectorised erf."""
    b, n = batch.shape
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    hd = h // heads
    eps = cfg["layer_norm_eps"]
    x = (
        t["embeddings.word_embeddings.weight"][batch]
        + t["embeddings.position_embeddings.weight"][:n]
        + t["embeddings.token_type_embeddings.weight"][0]
    )
    x = ref.layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i

        def split(y):
            return y.reshape(b, n, heads, hd).transpose(0, 2, 1, 3)

        q = split(ref.linear(x, t, p + "attention.self.query"))
        k = split(ref.linear(x, t, p + "attention.self.key"))
        v = split(ref.linear(x, t, p + "attention.self.value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(b, n, h)
        a = ref.linear(ctx, t, p + "attention.output.dense")
        x = ref.layer_norm(a + x, t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"], eps)
        m = ref.linear(x, t, p + "intermediate.dense")
        m = 0.5 * m * (1.0 + erf(m / math.sqrt(2.0)))
        o = ref.linear(m, t, p + "output.dense")
        x = ref.layer_norm(o + x, t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], eps)
    return x


# --- the corpus ---------------------------------------------------------------


def fill(template, rng, people, places, orgs):
    """(words, tags) for a template with its slots filled."""
    words, tags = [], []
    for piece in template.split():
        slot = None
        for key, kind in (("{P}", "PER"), ("{L}", "LOC"), ("{O}", "ORG")):
            if key in piece:
                slot = (key, kind)
        if slot is None:
            words.append(piece)
            tags.append("O")
            continue
        key, kind = slot
        before, after = piece.split(key)
        if kind == "PER":
            name = rng.choice(people)
            if rng.random() < 0.3:
                name += " " + rng.choice(SURNAMES)
        elif kind == "LOC":
            name = rng.choice(places)
        else:
            name = rng.choice(orgs)
        parts = name.split()
        if before:
            words.append(before)
            tags.append("O")
        for j, w in enumerate(parts):
            words.append(w + (after if j == len(parts) - 1 else ""))
            tags.append(("B-" if j == 0 else "I-") + kind)
    # Transcripts capitalise the first word.
    words[0] = words[0][:1].upper() + words[0][1:]
    return words, tags


def piece_labels(words, tags, vocab):
    """Word pieces of a tagged sentence, each with a label id: a word's tag
    goes to its first piece and I-<kind> to the rest (a B- word's later
    pieces too); punctuation split off a word is O. [CLS]/[SEP] get -1."""
    ids = [vocab["[CLS]"]]
    labels = [-1]
    for w, tag in zip(words, tags):
        first = True
        for bw in ref.basic_tokenize(w):
            is_punct = len(bw) == 1 and ref._is_punctuation(bw)
            for pid in ref.wordpiece(bw, vocab, vocab["[UNK]"]):
                ids.append(pid)
                if tag == "O" or is_punct:
                    labels.append(0)
                elif first:
                    labels.append(LABELS.index(tag))
                else:
                    labels.append(LABELS.index("I-" + tag[2:]))
                if not is_punct:
                    first = False
    ids.append(vocab["[SEP]"])
    labels.append(-1)
    return ids, labels


def corpus(rng, people, places, orgs, n_templated, n_plain_copies):
    out = []
    for _ in range(n_templated):
        out.append(fill(rng.choice(TEMPLATES), rng, people, places, orgs))
    for s in PLAIN:
        for _ in range(n_plain_copies):
            words = s.split()
            out.append((words, ["O"] * len(words)))
    for _ in range(n_templated // 6):
        s = rng.choice(NUMERIC)
        digits = " ".join(str(rng.randrange(10)) for _ in range(rng.randrange(3, 11)))
        s = s.replace("{D}", digits).replace("{N}", str(rng.randrange(2, 500)))
        s = s.replace("{W}", rng.choice(NUMBER_WORDS))
        words = s.split()
        words[0] = words[0][:1].upper() + words[0][1:]
        out.append((words, ["O"] * len(words)))
    return out


def features(sents, t, cfg, vocab):
    """Token vectors and labels; sentences of one length run as one batch."""
    by_len = {}
    for words, tags in sents:
        ids, labels = piece_labels(words, tags, vocab)
        by_len.setdefault(len(ids), []).append((ids, labels))
    xs, ys = [], []
    for n in sorted(by_len):
        group = by_len[n]
        for start in range(0, len(group), 64):
            chunk = group[start : start + 64]
            hs = token_vectors(np.array([ids for ids, _ in chunk]), t, cfg)
            for (_, labels), hrows in zip(chunk, hs):
                for hvec, lab in zip(hrows, labels):
                    if lab >= 0:
                        xs.append(hvec)
                        ys.append(lab)
    return np.array(xs, dtype=np.float32), np.array(ys, dtype=np.int64)


def train(x, y, classes, rng_np, epochs=300, lr=0.05, l2=1e-3):
    """Softmax regression, full-batch Adam; classes weighted by inverse
    frequency (capped at CLASS_WEIGHT_CAP) so the rare B-/I- tags are not
    drowned by O; a higher cap trades precision for recall."""
    n, d = x.shape
    w = rng_np.normal(0.0, 0.01, size=(d, classes)).astype(np.float64)
    b = np.zeros(classes)
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    cw = np.minimum(n / (classes * np.maximum(counts, 1.0)), CLASS_WEIGHT_CAP)
    sw = cw[y] / cw[y].sum()
    onehot = np.eye(classes)[y]
    mw, vw, mb, vb = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    x64 = x.astype(np.float64)
    for step in range(1, epochs + 1):
        z = x64 @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) * sw[:, None]
        gw = x64.T @ g + l2 * w
        gb = g.sum(0)
        for param, grad, m, v in ((w, gw, mw, vw), (b, gb, mb, vb)):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return w, b


def token_f1(y, pred):
    """Micro F1 over the non-O labels (a token counts when its exact BIO label
    is right), plus per-label F1."""
    out = {}
    tp = fp = fn = 0
    for c in range(1, len(LABELS)):
        ctp = int(((pred == c) & (y == c)).sum())
        cfp = int(((pred == c) & (y != c)).sum())
        cfn = int(((pred != c) & (y == c)).sum())
        tp, fp, fn = tp + ctp, fp + cfp, fn + cfn
        denom = 2 * ctp + cfp + cfn
        out[LABELS[c]] = round(2 * ctp / denom, 4) if denom else None
    out["micro"] = round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else None
    return out


# --- main ---------------------------------------------------------------------


def write_model_dir(d, graphs, docs, copies=()):
    """Write a model directory whole or not at all: the ONNX graphs
    ({file: model}), the JSON documents ({file: value}) and copies of
    `copies` go to d.tmp, then `.complete` (what the shell half's freshness
    check looks for), then d.tmp replaces d."""
    tmp = d + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for fname, model in graphs.items():
        onnx.save_model(model, os.path.join(tmp, fname))
    for path in copies:
        shutil.copy(path, tmp)
    for fname, doc in docs.items():
        with open(os.path.join(tmp, fname), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
    open(os.path.join(tmp, ".complete"), "w").close()
    shutil.rmtree(d, ignore_errors=True)
    os.rename(tmp, d)


def main():
    t0 = time.time()
    src = sys.argv[1] if len(sys.argv) > 1 else "models/all-minilm-l6-v2"
    out_root = sys.argv[2] if len(sys.argv) > 2 else "models"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    t = {k: v.astype(np.float32) for k, v in ref.read_safetensors(os.path.join(src, "model.safetensors")).items() if v.dtype.kind == "f"}
    t = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in t.items()}

    # 1. The encoder, checked against the numpy forward pass.
    enc = encoder_model(t, cfg)
    check = "My name is Amina and I am calling from Mombasa."
    ids = ref.tokenize(check, vocab)
    want = token_vectors(np.array([ids]), {k: v.astype(np.float64) for k, v in t.items()}, cfg)[0]
    from onnx.reference import ReferenceEvaluator

    (got,) = ReferenceEvaluator(enc).run(
        None,
        {"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64)},
    )
    diff = float(np.abs(got[0] - want).max())
    print("make_onnx_models: [%.1f s] encoder graph vs numpy reference: max |diff| %.2e over %d tokens" % (time.time() - t0, diff, len(ids)))
    if diff > 1e-3:
        sys.exit("make_onnx_models: the ONNX encoder does not match the numpy reference")

    def write_dir(name, model, extra):
        d = os.path.join(out_root, name)
        write_model_dir(d, {"model.onnx": model}, extra, [os.path.join(src, "tokenizer.json")])
        print("make_onnx_models: wrote %s (model.onnx %d bytes)" % (d, os.path.getsize(os.path.join(d, "model.onnx"))))

    write_dir("minilm-onnx", enc, {"sentence_bert_config.json": {"max_seq_length": MAX_TOKENS, "do_lower_case": False}})
    del enc

    # 2. The token-classification demo.
    rng = random.Random(SEED)
    held = lambda n: n.lower() in HELD_OUT_FROM_TRAINING or any(p.lower() in HELD_OUT_FROM_TRAINING for p in n.split())  # noqa: E731
    people = sorted({n for n in FIRST_NAMES if not held(n)})
    places = [p for p in gazetteer(os.path.join(repo, "config/gazetteer/locations.txt")) if not held(p)]
    orgs = [o for o in gazetteer(os.path.join(repo, "config/gazetteer/organizations.txt")) if not held(o)]
    for lst in (people, places, orgs):
        rng.shuffle(lst)
    # Test split: other names, places and organisations than training.
    cut = lambda lst: (lst[: int(len(lst) * 0.8)], lst[int(len(lst) * 0.8) :])  # noqa: E731
    (p_tr, p_te), (l_tr, l_te), (o_tr, o_te) = cut(people), cut(places), cut(orgs)
    train_sents = corpus(rng, p_tr, l_tr, o_tr, 1400, 3)
    test_sents = corpus(rng, p_te, l_te, o_te, 300, 1)
    xtr, ytr = features(train_sents, t, cfg, vocab)
    xte, yte = features(test_sents, t, cfg, vocab)
    print("make_onnx_models: %d training sentences (%d tokens), %d test sentences (%d tokens), %.1f s"
          % (len(train_sents), len(ytr), len(test_sents), len(yte), time.time() - t0))
    w, b = train(xtr, ytr, len(LABELS), np.random.default_rng(SEED))
    f1_train = token_f1(ytr, (xtr @ w + b).argmax(1))
    f1_test = token_f1(yte, (xte @ w + b).argmax(1))
    print("make_onnx_models: token F1 train %s" % f1_train)
    print("make_onnx_models: token F1 test (unseen names/places) %s" % f1_test)

    ner = ner_model(t, cfg, w, b)
    labels = {
        "model": "earshot-ner-demo",
        "description": "all-MiniLM-L6-v2 encoder + linear BIO head trained on a synthetic corpus "
        "(scripts/make_onnx_models.py); a demonstration model",
        "id2label": {str(i): l for i, l in enumerate(LABELS)},
        "max_tokens": MAX_TOKENS,
        "input_names": ["input_ids", "attention_mask"],
        "output_name": "logits",
    }
    report = {
        "seed": SEED,
        "train_sentences": len(train_sents),
        "train_tokens": int(len(ytr)),
        "test_sentences": len(test_sents),
        "test_tokens": int(len(yte)),
        "token_f1_train": f1_train,
        "token_f1_test": f1_test,
        "held_out_from_training": sorted(HELD_OUT_FROM_TRAINING),
        "encoder_vs_numpy_max_abs_diff": diff,
    }
    write_dir("onnx-ner-demo", ner, {"labels.json": labels, "report.json": report})
    print("make_onnx_models: done in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
