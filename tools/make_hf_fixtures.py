#!/usr/bin/env python3
"""Fixtures from Hugging Face's own libraries for the tokenizer and generation tests (CI reads the committed
files and needs no Python).

1. tokenizers/<kind>/: four small tokenizers trained with the `tokenizers` library on the bundled corpus, one
   per model kind it has: "bytelevel_bpe" (GPT-2 style), "sentencepiece_bpe" (Llama style: byte fallback,
   "<s>" added by the post-processor), "unigram" (T5 style: "</s>" appended), "wordpiece" (BERT style:
   "[CLS] ... [SEP]"), each with its tokenizer_config.json; tokenizers/expected.json holds documents and, per
   kind, transformers' `tokenizer(doc)["input_ids"]` and `tokenizer.decode(ids, skip_special_tokens=True)`.
2. hf_mixtral_gen/: a small MixtralForCausalLM made by transformers from a config (grouped-query attention,
   seeded random weights, the byte-level tokenizer), saved with save_pretrained; expected.json holds prompts,
   their ids and transformers' greedy `generate` (float64) for each, with the smallest gap between the best
   and the second-best logit along the way (the margin a float32 reimplementation must stay within).

Needs torch, transformers and tokenizers (pip; this machine serves them from its local mirror):
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install --no-index --find-links /opt/pypi/files \
        --find-links /opt/pypi-more/files torch transformers tokenizers safetensors
    /tmp/hfenv/bin/python tools/make_hf_fixtures.py
"""
import gzip
import json
import os

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import MixtralConfig, MixtralForCausalLM, PreTrainedTokenizerFast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "expert-ops", "src", "test", "resources", "fixtures")
VOCAB = 600

DOCS = [
    "Call me Ishmael. Some years ago--never mind how long precisely--having little or no money in my purse,",
    "naïve café — “quoted” 🐳 鯨 クジラ  double  spaces\n\nand\ttabs 123,456.7 don't",
    "  leading spaces, trailing spaces  ",
    "The Whale.\n\nCHAPTER 1. Loomings.",
    "x",
    "ÆØÅ æøå ß ﬁ ½ ① Ⅻ",
]


def corpus_text():
    with gzip.open(os.path.join(ROOT, "data", "corpus", "moby-dick.txt.gz"), "rt", encoding="utf-8") as f:
        return f.read()[:300_000]


def paragraphs(text):
    return [p for p in text.split("\n\n") if p.strip()]


def bytelevel_bpe(train):
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(train, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                                     initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                     show_progress=False))
    return t, {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}


def sentencepiece_bpe(train):
    trained = Tokenizer(models.BPE())
    trained.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trained.train_from_iterator(train, trainers.BpeTrainer(vocab_size=VOCAB - 259, show_progress=False))
    m = json.loads(trained.to_str())["model"]
    # Llama's layout: <unk> <s> </s>, the 256 byte tokens, then the trained pieces.
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    for piece, _ in sorted(m["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
    t = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    t.add_special_tokens(["<unk>", "<s>", "</s>"])
    t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    t.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                   decoders.Strip(" ", 1, 0)])
    t.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                     special_tokens=[("<s>", 1)])
    return t, {"eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>"}


def unigram(train):
    t = Tokenizer(models.Unigram())
    t.normalizer = normalizers.NFKC()
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.decoder = decoders.Metaspace()
    t.train_from_iterator(train, trainers.UnigramTrainer(vocab_size=VOCAB, special_tokens=["<pad>", "</s>", "<unk>"],
                                                         unk_token="<unk>", show_progress=False))
    t.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                     special_tokens=[("</s>", t.token_to_id("</s>"))])
    return t, {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def wordpiece(train):
    t = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    t.normalizer = normalizers.BertNormalizer(lowercase=True)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    t.decoder = decoders.WordPiece()
    t.train_from_iterator(train, trainers.WordPieceTrainer(
        vocab_size=VOCAB, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    t.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                     special_tokens=[("[CLS]", t.token_to_id("[CLS]")),
                                                                     ("[SEP]", t.token_to_id("[SEP]"))])
    # BERT has no end-of-text token: its separator ends a document.
    return t, {"eos_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]"}


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def save_tokenizer(t, config, out):
    os.makedirs(out, exist_ok=True)
    t.save(os.path.join(out, "tokenizer.json"))
    write_json(os.path.join(out, "tokenizer_config.json"),
               dict(config, tokenizer_class="PreTrainedTokenizerFast", clean_up_tokenization_spaces=False))
    return PreTrainedTokenizerFast.from_pretrained(out)


def tokenizers_fixture(text):
    train = paragraphs(text)
    docs = DOCS + train[600:606]
    out = {"docs": docs, "ids": {}, "decoded": {}}
    for name, make in [("bytelevel_bpe", bytelevel_bpe), ("sentencepiece_bpe", sentencepiece_bpe),
                       ("unigram", unigram), ("wordpiece", wordpiece)]:
        t, config = make(train)
        hf = save_tokenizer(t, config, os.path.join(FIXTURES, "tokenizers", name))
        ids = [hf(d)["input_ids"] for d in docs]
        out["ids"][name] = ids
        out["decoded"][name] = [hf.decode(i, skip_special_tokens=True) for i in ids]
    write_json(os.path.join(FIXTURES, "tokenizers", "expected.json"), out)


def generation_fixture():
    out = os.path.join(FIXTURES, "hf_mixtral_gen")
    tok = PreTrainedTokenizerFast.from_pretrained(os.path.join(FIXTURES, "tokenizers", "bytelevel_bpe"))
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = MixtralConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rope_theta=1e6,
                        num_local_experts=4, num_experts_per_tok=2, rms_norm_eps=1e-5, tie_word_embeddings=False,
                        initializer_range=0.3, bos_token_id=eos, eos_token_id=eos, router_jitter_noise=0.0)
    torch.manual_seed(0)
    model = MixtralForCausalLM(cfg).float().eval()
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    model = MixtralForCausalLM.from_pretrained(out, torch_dtype=torch.float64, attn_implementation="eager",
                                               experts_implementation="eager").eval()
    prompts = ["Call me Ishmael.", "The whale", "It is not down in any map; true places never are."]
    cases = []
    for p in prompts:
        ids = tok(p)["input_ids"]
        with torch.no_grad():
            g = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=24, eos_token_id=eos,
                               pad_token_id=eos, output_scores=True, return_dict_in_generate=True)
        gap = min(float(torch.topk(s[0], 2).values[0] - torch.topk(s[0], 2).values[1]) for s in g.scores)
        cases.append({"prompt": p, "prompt_ids": ids, "generated": g.sequences[0, len(ids):].tolist(),
                      "min_top2_gap": gap})
    write_json(os.path.join(out, "expected.json"), {"max_new_tokens": 24, "eos_id": eos, "cases": cases})


if __name__ == "__main__":
    tokenizers_fixture(corpus_text())
    generation_fixture()
