#!/usr/bin/env python3
"""The GPU check's part (d): the moe-spark model and training step in idiomatic PyTorch eager, for tokens/s.

The model of DESIGN.md section 3 (pre-norm RMSNorm, RoPE attention through scaled_dot_product_attention,
top-k routed SwiGLU experts with renormalised gates, aux and z losses, AdamW with global-norm clipping), sized
by a moe-spark config (conf/gpu-bench.yaml), in fp32 master weights with TF32 matmuls (precision tf32) or bf16
autocast (precision bf16). The experts run as Hugging Face's Mixtral does in eager mode: a loop over experts
with index_select / index_add. Prints one line per precision with tokens/s and MFU, and, given the Java side's
lines (moe-gpu-check run --bench-out), the ratio moe-spark / PyTorch.

usage: torch_moe_bench.py --config conf/gpu-bench.yaml [--java java-bench.jsonl] [--steps 10] [--device cuda]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

# Dense peak TFLOP/s of the GPUs the project is lent (NVIDIA's data sheets, SXM): bf16 and tf32.
PEAK = {"H100": {"bf16": 989.4, "tf32": 494.7}, "H200": {"bf16": 989.4, "tf32": 494.7}}


def read_config(path):
    """The few keys this script needs from a moe-spark YAML config (flat two-level mapping, no library)."""
    cfg, section = {}, None
    for raw in open(path):
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line.startswith(" "):
            section = line.rstrip(":")
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        cfg[f"{section}.{key}"] = value
    return cfg


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps).to(x.dtype) * self.weight


class Moe(torch.nn.Module):
    def __init__(self, d, f, experts, k):
        super().__init__()
        self.k = k
        self.router = torch.nn.Linear(d, experts, bias=False)
        self.w1 = torch.nn.ModuleList(torch.nn.Linear(d, f, bias=False) for _ in range(experts))
        self.w3 = torch.nn.ModuleList(torch.nn.Linear(d, f, bias=False) for _ in range(experts))
        self.w2 = torch.nn.ModuleList(torch.nn.Linear(f, d, bias=False) for _ in range(experts))

    def forward(self, x):
        logits = self.router(x).float()
        probs = logits.softmax(-1)
        top_p, top_i = probs.topk(self.k, dim=-1)
        gates = top_p / top_p.sum(-1, keepdim=True)
        y = torch.zeros_like(x)
        for e in range(len(self.w1)):
            rows, slot = (top_i == e).nonzero(as_tuple=True)
            if rows.numel():
                h = x.index_select(0, rows)
                out = self.w2[e](F.silu(self.w1[e](h)) * self.w3[e](h))
                y = y.index_add(0, rows, (out * gates[rows, slot, None]).to(y.dtype))
        n = x.shape[0]
        f_e = torch.bincount(top_i.flatten(), minlength=len(self.w1)).float() / (self.k * n)
        aux = len(self.w1) * (f_e * probs.mean(0)).sum()
        z = (torch.logsumexp(logits, -1) ** 2).mean()
        return y, aux, z


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["d"]
        self.heads = c["heads"]
        self.attn_norm = RMSNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d, bias=False)
        self.wo = torch.nn.Linear(d, d, bias=False)
        self.ffn_norm = RMSNorm(d)
        self.moe = Moe(d, c["f"], c["experts"], c["k"])

    def forward(self, x, cos, sin, b, t):
        d = x.shape[-1]
        hd = d // self.heads
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.wo(o.transpose(1, 2).reshape(b * t, d))
        y, aux, z = self.moe(self.ffn_norm(x))
        return x + y, aux, z


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


class Model(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = torch.nn.Embedding(c["vocab"], c["d"])
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["d"])
        self.head = torch.nn.Linear(c["d"], c["vocab"], bias=False)
        for p in self.parameters():
            torch.nn.init.normal_(p, std=0.02) if p.dim() > 1 else torch.nn.init.ones_(p)

    def forward(self, ids, targets):
        b, t = ids.shape
        hd = self.c["d"] // self.c["heads"]
        freq = 10000.0 ** (-torch.arange(hd // 2, device=ids.device, dtype=torch.float32) / (hd // 2))
        ang = torch.arange(t, device=ids.device, dtype=torch.float32)[:, None] * freq[None, :]
        cos, sin = ang.cos(), ang.sin()
        x = self.embed(ids).view(b * t, -1)
        aux = z = 0.0
        for blk in self.blocks:
            x, a, zz = blk(x, cos, sin, b, t)
            aux, z = aux + a, z + zz
        logits = self.head(self.norm(x)).float()
        return F.cross_entropy(logits, targets.view(-1)) + 0.01 * aux + 0.001 * z


def active_params(model, c):
    total = sum(p.numel() for p in model.parameters())
    expert = sum(p.numel() for blk in model.blocks for m in (blk.moe.w1, blk.moe.w2, blk.moe.w3) for p in m.parameters())
    return total - expert + expert * c["k"] // c["experts"]


def bench(c, precision, steps, device):
    torch.manual_seed(7)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    model = Model(c).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ids = torch.randint(0, 256, (c["batch"], c["seq"] + 1), device=device)
    inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return dict(precision=precision, tokens_per_s=steps * c["batch"] * c["seq"] / seconds,
                active_params=active_params(model, c), loss=float(loss))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--java")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    y = read_config(a.config)
    c = dict(vocab=int(y["model.vocab_size"]), d=int(y["model.d_model"]), layers=int(y["model.n_layers"]),
             heads=int(y["model.n_heads"]), seq=int(y["model.seq_len"]), experts=int(y["moe.experts"]),
             k=int(y["moe.top_k"]), f=int(y["moe.d_expert"]), batch=int(y["train.batch_size"]))
    name = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    peak = next((v for key, v in PEAK.items() if key in name), None)
    java = {}
    if a.java:
        for line in open(a.java):
            r = json.loads(line)
            java[r["precision"]] = r
    print(f"device: {name}, torch {torch.__version__}")
    print("| precision | moe-spark tokens/s | PyTorch eager tokens/s | ratio | moe-spark MFU | PyTorch MFU |")
    print("|---|---|---|---|---|---|")
    for precision in ("tf32", "bf16"):
        t = bench(c, precision, a.steps, a.device)
        j = java.get(precision)
        mfu = (lambda r: f"{100 * 6 * r['active_params'] * r['tokens_per_s'] / (peak[precision] * 1e12):.1f} %"
               if peak and r else "n/a")
        print(f"| {precision} | {j['tokens_per_s']:,.0f} | {t['tokens_per_s']:,.0f} | "
              f"{j['tokens_per_s'] / t['tokens_per_s']:.2f} | {mfu(j)} | {mfu(t)} |" if j else
              f"| {precision} | – | {t['tokens_per_s']:,.0f} | – | – | {mfu(t)} |")


if __name__ == "__main__":
    main()
