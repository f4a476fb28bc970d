"""Helpers the notebooks share: reading a run directory, prepared data, an exported model, the BPE
tokenizer, and a small NumPy reference of the model (DESIGN section 3) to score text independently of
the Java code. Standard library, NumPy and pandas only (Debian's python3 packages)."""
import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def env_path(name, default):
    """A path from the environment (how CI points the notebooks at its own run), else the demo's."""
    return Path(os.environ.get(name, str(ROOT / default)))


# ---- run directories --------------------------------------------------------------------------------

def metrics(run):
    """metrics.jsonl as a DataFrame, one row per step (1-based 'step'); per-expert counts kept as lists."""
    rows = [json.loads(l) for l in (Path(run) / "metrics.jsonl").read_text().splitlines() if l.strip()]
    rows = [r for r in rows if "event" not in r]  # events' rows (placement_move) are not steps
    df = pd.DataFrame(rows)
    df["exchange_share"] = df["exchange_seconds"] / df["seconds"]
    return df.set_index("step")


def expert_share(df, layer):
    """Steps x experts: each expert's share of the layer's token assignments (before dropping)."""
    counts = np.array([row[layer] for row in df["expert_tokens"]], dtype=float)
    return counts / counts.sum(axis=1, keepdims=True)


def dropped_fraction(df, layer):
    a = np.array([sum(row[layer]) for row in df["expert_tokens"]], dtype=float)
    k = np.array([sum(row[layer]) for row in df["expert_tokens_kept"]], dtype=float)
    return pd.Series(np.where(a > 0, (a - k) / np.maximum(a, 1), 0.0), index=df.index)


def latest_checkpoint(run):
    steps = sorted((Path(run) / "checkpoints").glob("step-*"))
    return steps[-1] if steps else None


def placement(run):
    """Expert -> rank per MoE layer from the newest checkpoint, as a DataFrame (layer, expert, rank)."""
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        return pd.DataFrame(columns=["layer", "expert", "rank"])
    state = json.loads((ckpt / "state.json").read_text())
    owner = [layer for layer in state["placement"] if layer]
    return pd.DataFrame([(l, e, _ranks(r)) for l, layer in enumerate(owner) for e, r in enumerate(layer)],
                        columns=["layer", "expert", "rank"])


def _ranks(holders):
    """An expert's holders as metrics.jsonl and state.json write them (a rank, or a list: replicas) as text."""
    return "|".join(map(str, holders)) if isinstance(holders, list) else str(holders)


def placements_over_time(run):
    """One row per placement of a run whose experts moved (from its placement_move rows in metrics.jsonl):
    the step it holds from, and per MoE layer each expert's ranks ("0|1": replicas). Empty when none moved."""
    rows = [json.loads(l) for l in open(Path(run) / "metrics.jsonl") if l.strip()]
    moves = [r for r in rows if r.get("event") == "placement_move"]
    if not moves:
        return pd.DataFrame()
    start = [list(layer) for layer in moves[0]["placement"]]
    for m in moves[0]["moved"]:  # the placement before the first move: its changes undone
        start[m["layer"]][m["expert"]] = m["from"]
    table = [(0, start)] + [(m["step"], m["placement"]) for m in moves]
    return pd.DataFrame([{f"MoE layer {i}": " ".join(_ranks(h) for h in layer)
                          for i, layer in enumerate(l for l in placement if l)} for _, placement in table],
                        index=pd.Index([step for step, _ in table], name="from step"))


def config(run):
    return json.loads((Path(run) / "config.json").read_text())


# ---- safetensors and the exported model -------------------------------------------------------------

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    """name -> NumPy array (the format: 8-byte little-endian header length, JSON header, raw data)."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype=_DTYPES[e["dtype"]]).reshape(e["shape"])
    return out


def load_model(model_dir):
    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    w = read_safetensors(model_dir / "model.safetensors")
    return cfg, {k: v.astype(np.float64) for k, v in w.items()}


# ---- the tokenizer (byte-level BPE, tokenizer.json as data-prep writes it) ---------------------------

def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# GPT-2's pre-tokenizer; [^\W\d_] stands for \p{L} (letters) in Python's re.
_PRE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")


class Tokenizer:
    def __init__(self, path):
        t = json.loads(Path(path).read_text())
        self.vocab = t["model"]["vocab"]
        merges = t["model"]["merges"]
        self.ranks = {tuple(m.split(" ") if isinstance(m, str) else m): i for i, m in enumerate(merges)}
        self.byte_map = _bytes_to_unicode()
        self.cache = {}

    def _bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), None), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            pairs = [p for p in pairs if p[0] is not None]
            if not pairs:
                break
            _, i = min(pairs)
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for piece in _PRE.findall(text):
            ids.extend(self._bpe("".join(self.byte_map[b] for b in piece.encode("utf-8"))))
        return ids


# ---- a NumPy reference of the model (float64; evaluation: dropless, top-k routing) ------------------

def _rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _rope(x, theta):
    t, hd = x.shape[-2], x.shape[-1]
    half = hd // 2
    freq = theta ** (-np.arange(half) / half)
    ang = np.arange(t)[:, None] * freq[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def _silu(x):
    return x / (1 + np.exp(-x))


def _gelu(x):
    from math import erf, sqrt
    return 0.5 * x * (1 + np.vectorize(erf)(x / sqrt(2)))


def _expert(w, prefix, x, activation):
    h = x @ w[prefix + ".w1.weight"].T
    h = _silu(h) * (x @ w[prefix + ".w3.weight"].T) if activation == "swiglu" else _gelu(h)
    return h @ w[prefix + ".w2.weight"].T


def forward(cfg, w, tokens, routing=None):
    """Logits [T, V] of one window; routing (optional dict) collects each MoE layer's chosen experts."""
    if cfg["router"] != "topk":
        raise ValueError("the reference covers router 'topk' only, not " + cfg["router"])
    eps, h_n = cfg["norm_eps"], cfg["n_heads"]
    x = w["embed.weight"][tokens]
    t, d = x.shape
    hd = d // h_n
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for i in range(cfg["n_layers"]):
        p = f"layers.{i}."
        a = _rms(x, w[p + "attn_norm.weight"], eps)
        q, k, v = (a @ w[p + f"attn.{n}.weight"].T for n in ("wq", "wk", "wv"))
        q, k, v = (m.reshape(t, h_n, hd).transpose(1, 0, 2) for m in (q, k, v))
        q, k = _rope(q, cfg["rope_theta"]), _rope(k, cfg["rope_theta"])
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        o = (s / s.sum(-1, keepdims=True)) @ v
        x = x + o.transpose(1, 0, 2).reshape(t, d) @ w[p + "attn.wo.weight"].T
        f = _rms(x, w[p + "ffn_norm.weight"], eps)
        if (i + 1) % cfg["moe_every"] == 0:
            logits = (f.astype(np.float32) @ w[p + "moe.router.weight"].astype(np.float32).T).astype(np.float64)
            pr = np.exp(logits - logits.max(-1, keepdims=True))
            pr /= pr.sum(-1, keepdims=True)
            top = np.argsort(-pr, axis=-1, kind="stable")[:, :cfg["top_k"]]
            gates = np.take_along_axis(pr, top, -1)
            if cfg["norm_topk"]:
                gates = gates / gates.sum(-1, keepdims=True)
            y = np.zeros_like(f)
            for e in range(cfg["n_experts"]):
                rows, slot = np.nonzero(top == e)
                if len(rows):
                    y[rows] += gates[rows, slot][:, None] * _expert(w, p + f"moe.experts.{e}", f[rows], cfg["activation"])
            for s_ in range(cfg["n_shared_experts"]):
                y += _expert(w, p + f"moe.shared.{s_}", f, cfg["activation"])
            if routing is not None:
                routing.setdefault(i, []).append(top)
        else:
            y = _expert(w, p + "ffn", f, cfg["activation"])
        x = x + y
    return _rms(x, w["norm.weight"], eps) @ w["lm_head.weight"].T


def mean_ce(cfg, w, tokens, routing=None):
    """Mean next-token cross-entropy over consecutive windows of seq_len + 1 tokens (as moe-eval)."""
    n = cfg["seq_len"] + 1
    total, count = 0.0, 0
    for start in range(0, len(tokens) - n + 1, n):
        win = np.asarray(tokens[start:start + n])
        logits = forward(cfg, w, win[:-1], routing)
        m = logits.max(-1, keepdims=True)
        lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[:, 0]
        total += float((lse - logits[np.arange(n - 1), win[1:]]).sum())
        count += n - 1
    return total / count
