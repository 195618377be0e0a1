"""Tests for scripts/whisper_convert.py (CTranslate2 / Hugging Face -> ggml).

Run:  python3 -m unittest discover tests/asr_convert
Needs only numpy. The tests on the real model need scripts/fetch-model to
have run (models/cache/ct2-tiny.en); they are skipped otherwise.
"""

import contextlib
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

try:
    import numpy as np
except ImportError:  # pragma: no cover
    raise unittest.SkipTest("numpy is not installed (scripts/fetch-model creates models/.venv with it)")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import whisper_convert as wc  # noqa: E402

CT2_TINY = os.path.join(ROOT, "models", "cache", "ct2-tiny.en")
HAVE_TINY = os.path.exists(os.path.join(CT2_TINY, "model.bin"))
NEED_TINY = unittest.skipUnless(HAVE_TINY, "run scripts/fetch-model first (needs %s)" % CT2_TINY)


def quiet(fn, *a, **kw):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a, **kw)


# --------------------------------------------------------------------------
# a tiny CT2 -> Hugging Face exporter (test-only), the inverse of what the
# converter's --hf path reads
# --------------------------------------------------------------------------

def export_ct2_as_hf(ct2_dir, out_dir):
    _, _, v = wc.read_ct2(os.path.join(ct2_dir, "model.bin"))
    hf = {}

    def lin(src, dst, bias=True):
        hf[dst + ".weight"] = v[src + "/weight"]
        if bias:
            hf[dst + ".bias"] = v[src + "/bias"]

    def ln(src, dst):
        hf[dst + ".weight"] = v[src + "/gamma"]
        hf[dst + ".bias"] = v[src + "/beta"]

    def split(src, parts):
        w, b = v[src + "/weight"], v[src + "/bias"]
        n = w.shape[0] // parts
        return [(w[i * n:(i + 1) * n], b[i * n:(i + 1) * n]) for i in range(parts)]

    def put_attn(dst, q, k, val, out_src):
        hf[dst + ".q_proj.weight"], hf[dst + ".q_proj.bias"] = q
        hf[dst + ".k_proj.weight"] = k[0]
        hf[dst + ".v_proj.weight"], hf[dst + ".v_proj.bias"] = val
        lin(out_src, dst + ".out_proj")

    def count(prefix):
        return len({k.split("/")[1] for k in v
                    if k.startswith(prefix + "/layer_") and k.split("/")[1][6:].isdigit()})

    n_enc, n_dec = count("encoder"), count("decoder")
    for c in ("conv1", "conv2"):
        lin("encoder/" + c, "model.encoder." + c)
    hf["model.encoder.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    ln("encoder/layer_norm", "model.encoder.layer_norm")
    for i in range(n_enc):
        s, d = "encoder/layer_%d" % i, "model.encoder.layers.%d" % i
        ln(s + "/self_attention/layer_norm", d + ".self_attn_layer_norm")
        q, k, val = split(s + "/self_attention/linear_0", 3)
        put_attn(d + ".self_attn", q, k, val, s + "/self_attention/linear_1")
        ln(s + "/ffn/layer_norm", d + ".final_layer_norm")
        lin(s + "/ffn/linear_0", d + ".fc1")
        lin(s + "/ffn/linear_1", d + ".fc2")
    hf["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    hf["model.decoder.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    ln("decoder/layer_norm", "model.decoder.layer_norm")
    for i in range(n_dec):
        s, d = "decoder/layer_%d" % i, "model.decoder.layers.%d" % i
        ln(s + "/self_attention/layer_norm", d + ".self_attn_layer_norm")
        q, k, val = split(s + "/self_attention/linear_0", 3)
        put_attn(d + ".self_attn", q, k, val, s + "/self_attention/linear_1")
        ln(s + "/attention/layer_norm", d + ".encoder_attn_layer_norm")
        q = (v[s + "/attention/linear_0/weight"], v[s + "/attention/linear_0/bias"])
        k, val = split(s + "/attention/linear_1", 2)
        put_attn(d + ".encoder_attn", q, k, val, s + "/attention/linear_2")
        ln(s + "/ffn/layer_norm", d + ".final_layer_norm")
        lin(s + "/ffn/linear_0", d + ".fc1")
        lin(s + "/ffn/linear_1", d + ".fc2")

    d_model = v["encoder/conv1/weight"].shape[0]
    cfg = {
        "model_type": "whisper",
        "d_model": d_model,
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "max_source_positions": v["encoder/position_encodings/encodings"].shape[0],
        "max_target_positions": v["decoder/position_encodings/encodings"].shape[0],
        "num_mel_bins": v["encoder/conv1/weight"].shape[1],
        "vocab_size": v["decoder/embeddings/weight"].shape[0],
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f)
    wc.write_safetensors(os.path.join(out_dir, "model.safetensors"), hf)
    with open(os.path.join(ct2_dir, "vocabulary.txt"), encoding="utf-8") as f:
        toks = f.read().split("\n")
    # HF keeps the BPE tokens in vocab.json and the specials in added_tokens.json
    eot = toks.index("<|endoftext|>")
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(toks[:eot])}, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "added_tokens.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(toks) if i >= eot and t}, f, ensure_ascii=False)
    return hf


# --------------------------------------------------------------------------

class MelFilterTest(unittest.TestCase):
    def setUp(self):
        self.f = wc.mel_filters(80, 400, 16000)

    def test_shape(self):
        self.assertEqual(self.f.shape, (80, 201))
        self.assertEqual(self.f.dtype, np.float32)

    def test_known_values(self):
        # First filter: only FFT bin 1 (40 Hz) lies inside (0, 74.5 Hz); its weight
        # is the value in Whisper's mel_filters.npz (librosa, Slaney).
        self.assertEqual(list(np.nonzero(self.f[0])[0]), [1])
        self.assertAlmostEqual(float(self.f[0, 1]), 0.02486259, places=7)
        self.assertAlmostEqual(float(self.f.max()), 0.025880685, places=6)
        # nonzero ranges (FFT bins) of a few filters
        ranges = {i: (int(np.nonzero(self.f[i])[0].min()), int(np.nonzero(self.f[i])[0].max()))
                  for i in (1, 10, 40, 79)}
        self.assertEqual(ranges, {1: (1, 2), 10: (10, 11), 40: (42, 44), 79: (186, 199)})
        # top filter: 7,447 .. 8,000 Hz is beyond the last bin's reach for the upper edge
        self.assertEqual(float(self.f[79, 200]), 0.0)

    def test_slaney_area_normalisation(self):
        # Slaney normalisation gives every triangle unit area in Hz: sum * 40 Hz ~ 1
        area = self.f.sum(axis=1) * 40.0
        self.assertTrue(np.all(np.abs(area[45:] - 1.0) < 0.02), area[45:])
        self.assertTrue(np.all(np.abs(area - 1.0) < 0.1), area)

    def test_mel_scale_roundtrip(self):
        hz = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0])
        np.testing.assert_allclose(wc.mel_to_hz(wc.hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)
        self.assertAlmostEqual(float(wc.hz_to_mel(1000.0)), 15.0)


class VocabTest(unittest.TestCase):
    def test_byte_level_decoding(self):
        self.assertEqual(wc.token_bytes("\u0120the"), b" the")   # 'Ġ' = space
        self.assertEqual(wc.token_bytes("\u010a"), b"\n")        # 'Ċ' = newline
        self.assertEqual(wc.token_bytes("!"), b"!")
        self.assertEqual(wc.token_bytes("\u00c3\u00a9"), "\u00e9".encode("utf-8"))
        with self.assertRaises(wc.ConvertError):
            wc.token_bytes("\u4e2d")  # not in the byte-level alphabet

    def test_regular_tokens(self):
        en = ["a", "b"] + ["x"] * 50254 + ["<|endoftext|>", "<|startoftranscript|>"]
        out = wc.regular_tokens(en)
        self.assertEqual(len(out), 50257)
        self.assertEqual(out[50256], b"<|endoftext|>")
        multi = ["a"] * 50256 + ["", "<|endoftext|>"]
        out = wc.regular_tokens(multi)
        self.assertEqual(len(out), 50257)
        self.assertEqual(out[50256], b"")
        with self.assertRaises(wc.ConvertError):
            wc.regular_tokens(["a", "<|endoftext|>"])


class Q8Test(unittest.TestCase):
    def test_roundtrip_error_bound(self):
        rng = np.random.default_rng(1)
        x = rng.normal(0, 0.05, size=(64, 384)).astype(np.float32)
        x[3, :32] = 0.0               # an all-zero block
        x[5, 40] = 3.0                # an outlier
        raw = wc.quantize_q8_0(x)
        self.assertEqual(len(raw), x.size // 32 * 34)
        y = wc.dequantize_q8_0(raw, x.shape)
        blocks = x.reshape(-1, 32)
        d = np.abs(blocks).max(axis=1) / 127.0
        err = np.abs(y.reshape(-1, 32) - blocks).max(axis=1)
        # half a step, plus the effect of storing d as f16 (rel. error <= 2^-11) on |q| <= 127
        bound = d * (0.5 + 127 * 2.0 ** -11) + 1e-12
        self.assertTrue(np.all(err <= bound), (err / np.maximum(d, 1e-30)).max())
        np.testing.assert_array_equal(y[3, :32], 0.0)
        self.assertLess(float(np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x ** 2))), 0.01)

    def test_rows_must_be_multiple_of_32(self):
        with self.assertRaises(wc.ConvertError):
            wc.quantize_q8_0(np.zeros((2, 33), np.float32))


class SafetensorsTest(unittest.TestCase):
    def test_roundtrip(self):
        tmp = tempfile.mkdtemp()
        try:
            p = os.path.join(tmp, "t.safetensors")
            a = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "y": np.ones(4, np.float16)}
            wc.write_safetensors(p, a)
            b = wc.read_safetensors(p)
            self.assertEqual(set(b), {"x", "y"})
            np.testing.assert_array_equal(b["x"], a["x"])
            np.testing.assert_array_equal(b["y"], a["y"])
        finally:
            shutil.rmtree(tmp)

    def test_unknown_layout_is_a_clear_error(self):
        tmp = tempfile.mkdtemp()
        try:
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump({"model_type": "whisper", "d_model": 4, "encoder_layers": 1,
                           "decoder_layers": 1, "encoder_attention_heads": 1,
                           "decoder_attention_heads": 1}, f)
            wc.write_safetensors(os.path.join(tmp, "model.safetensors"),
                                 {"model.encoder.conv1.weight": np.zeros((4, 80, 3), np.float32)})
            with self.assertRaises(wc.ConvertError) as cm:
                wc.from_hf(tmp)
            self.assertIn("missing tensor", str(cm.exception))
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump({"model_type": "bert"}, f)
            with self.assertRaises(wc.ConvertError):
                wc.from_hf(tmp)
        finally:
            shutil.rmtree(tmp)


@NEED_TINY
class RealTinyEnTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="asr_convert_")
        cls.W = wc.from_ct2(CT2_TINY)
        cls.f16 = os.path.join(cls.tmp, "ct2-f16.bin")
        cls.q8 = os.path.join(cls.tmp, "ct2-q8_0.bin")
        quiet(wc.write_ggml, cls.W, cls.f16, "f16")
        quiet(wc.write_ggml, cls.W, cls.q8, "q8_0")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_ct2_parse(self):
        spec, rev, v = wc.read_ct2(os.path.join(CT2_TINY, "model.bin"))
        self.assertEqual((spec, rev), ("WhisperSpec", 3))
        self.assertEqual(len(v), 148 + 1)  # 148 variables + 1 alias
        self.assertIs(v["decoder/projection/weight"], v["decoder/embeddings/weight"])
        self.assertEqual(v["decoder/embeddings/weight"].shape, (51864, 384))
        self.assertEqual(v["encoder/conv1/weight"].shape, (384, 80, 3))
        self.assertEqual(v["encoder/layer_0/self_attention/linear_0/weight"].shape, (1152, 384))
        self.assertEqual(v["decoder/layer_3/attention/linear_1/weight"].shape, (768, 384))
        self.assertEqual(v["encoder/position_encodings/encodings"].shape, (1500, 384))
        self.assertEqual(v["encoder/conv1/weight"].dtype, np.float16)
        self.assertEqual(int(v["encoder/num_heads"]), 6)

    def test_mapped_model(self):
        hp = self.W.hparams
        self.assertEqual(hp, {"n_vocab": 51864, "n_audio_ctx": 1500, "n_audio_state": 384,
                              "n_audio_head": 6, "n_audio_layer": 4, "n_text_ctx": 448,
                              "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4,
                              "n_mels": 80})
        self.assertEqual(len(self.W.tensors), 167)
        self.assertEqual(len(self.W.vocab), 50257)
        self.assertEqual(self.W.vocab[262], b" the")
        self.assertEqual(self.W.tensors["encoder.conv1.bias"].shape, (384, 1))
        # Q/K/V split: the fused CT2 row blocks
        _, _, v = wc.read_ct2(os.path.join(CT2_TINY, "model.bin"))
        fused = v["decoder/layer_2/self_attention/linear_0/weight"]
        np.testing.assert_array_equal(self.W.tensors["decoder.blocks.2.attn.key.weight"], fused[384:768])
        kv = v["decoder/layer_2/attention/linear_1/bias"]
        np.testing.assert_array_equal(self.W.tensors["decoder.blocks.2.cross_attn.value.bias"], kv[384:])

    def test_sizes_match_whisper_cpp_files(self):
        # byte sizes of whisper.cpp's published ggml-tiny.en.bin / -q8_0.bin
        self.assertEqual(os.path.getsize(self.f16), 77704715)
        self.assertEqual(os.path.getsize(self.q8), 43550795)

    def test_check(self):
        for p in (self.f16, self.q8):
            self.assertEqual(quiet(wc.check_file, p), [], p)
            self.assertEqual(quiet(wc.main, ["--check", p]), 0)
        g = wc.read_ggml(self.f16)
        self.assertEqual(g["hparams"]["ftype"], 1)
        np.testing.assert_array_equal(g["filters"], wc.mel_filters())
        self.assertEqual(wc.read_ggml(self.q8)["hparams"]["ftype"], 7)

    def test_check_detects_damage(self):
        bad = os.path.join(self.tmp, "bad.bin")
        with open(self.f16, "rb") as f:
            data = bytearray(f.read())
        # claim 5 audio layers: block 4 is then missing
        struct.pack_into("<i", data, 4 + 4 * 4, 5)
        with open(bad, "wb") as f:
            f.write(data)
        problems = quiet(wc.check_file, bad)
        self.assertTrue(any("missing tensor encoder.blocks.4" in p for p in problems), problems)
        with open(bad, "wb") as f:
            f.write(bytes(data[:len(data) // 2]))
        with self.assertRaises(wc.ConvertError):
            quiet(wc.check_file, bad)

    def test_q8_0_close_to_f16(self):
        a = wc.read_ggml(self.f16, load_data=True)["tensors"]
        b = wc.read_ggml(self.q8, load_data=True)["tensors"]
        for name in ("encoder.blocks.0.attn.query.weight", "decoder.token_embedding.weight",
                     "decoder.blocks.3.mlp.2.weight"):
            x, y = a[name][3], b[name][3]
            self.assertEqual(b[name][0], wc.GGML_TYPE_Q8_0)
            rel = np.sqrt(np.mean((x - y) ** 2)) / np.sqrt(np.mean(x ** 2))
            self.assertLess(rel, 0.02, name)
        self.assertEqual(b["encoder.conv1.weight"][0], wc.GGML_TYPE_F16)
        self.assertEqual(b["encoder.conv1.bias"][0], wc.GGML_TYPE_F32)
        np.testing.assert_array_equal(a["encoder.ln_post.bias"][3], b["encoder.ln_post.bias"][3])

    def test_hf_path_equals_ct2_path(self):
        hf_dir = os.path.join(self.tmp, "hf")
        export_ct2_as_hf(CT2_TINY, hf_dir)
        W2 = wc.from_hf(hf_dir)
        self.assertEqual(W2.hparams, self.W.hparams)
        self.assertEqual(W2.vocab, self.W.vocab)
        self.assertEqual(set(W2.tensors), set(self.W.tensors))
        for name, arr in self.W.tensors.items():
            np.testing.assert_array_equal(W2.tensors[name], arr, err_msg=name)
        for ftype, ref in (("f16", self.f16), ("q8_0", self.q8)):
            out = os.path.join(self.tmp, "hf-%s.bin" % ftype)
            self.assertEqual(quiet(wc.main, ["--hf", hf_dir, "--out", out, "--ftype", ftype]), 0)
            with open(out, "rb") as f1, open(ref, "rb") as f2:
                self.assertTrue(f1.read() == f2.read(), "HF and CT2 paths differ for %s" % ftype)


if __name__ == "__main__":
    unittest.main()
