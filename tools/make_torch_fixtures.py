#!/usr/bin/python3
"""Reference fixtures from PyTorch for expert-ops' tests (DESIGN section 3, written independently of the Java code).

A 2-layer model (layer 0 dense SwiGLU, layer 1 MoE with E=4, k=2, one shared expert), float64:
  - the initial parameters (rounded to float32, so the Java float32 model starts from the same point),
  - loss terms and every parameter gradient for batch 0,
  - loss terms per step and the parameters after three AdamW steps (clipping at 1.0) on batches 0, 1, 2.

Cases (--case): "mha" (the above, fixtures/torch_moe/), "gqa" (the same with 4 query heads sharing 2
key/value heads, as transformers' repeat_kv: fixtures/torch_moe_gqa/) and "tied" (the output layer is the
embedding: fixtures/torch_moe_tied/) and "rope" (Llama 3.1's rope_scaling, as transformers computes it, with
a short original context so that its three bands all occur: fixtures/torch_moe_rope/) and "qkv_bias" (Qwen2's
attention: biases on q, k and v, with grouped-query attention: fixtures/torch_moe_qkv_bias/).

Run with Debian's python3-torch:  /usr/bin/python3 tools/make_torch_fixtures.py [--case mha|gqa]
Writes expert-ops/src/test/resources/fixtures/<case dir>/. CI reads the committed files and needs no Python.
"""
import argparse
import json
import math
import os
import struct

import torch

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "expert-ops", "src", "test", "resources", "fixtures")
CASES = {"mha": ("torch_moe", {}), "gqa": ("torch_moe_gqa", dict(n_heads=4, n_kv_heads=2)),
         "tied": ("torch_moe_tied", dict(tie_embeddings=True)),
         "rope": ("torch_moe_rope", dict(rope_scaling="llama3", rope_scaling_factor=8.0, rope_low_freq_factor=1.0,
                                         rope_high_freq_factor=4.0, rope_original_max_positions=64)),
         "qkv_bias": ("torch_moe_qkv_bias", dict(n_heads=4, n_kv_heads=2, qkv_bias=True))}
CFG = dict(vocab_size=32, d_model=16, n_layers=2, n_heads=2, d_ff=24, moe_every=2, n_experts=4, top_k=2,
           d_expert=12, n_shared_experts=1, activation="swiglu", router="topk", norm_topk=True,
           capacity_factor=0.0, rope_theta=10000.0, norm_eps=1e-5, seq_len=8)
TRAIN = dict(batch_size=3, aux_loss_coef=0.01, z_loss_coef=0.001, lr=[1e-2, 2e-2, 1.5e-2], beta1=0.9, beta2=0.95,
             eps=1e-8, weight_decay=0.1, grad_clip=1.0)
torch.set_default_dtype(torch.float64)


def names():
    c = CFG
    shapes = {"embed.weight": (c["vocab_size"], c["d_model"])}
    d, f, e = c["d_model"], c["d_ff"], c["d_expert"]
    for i in range(c["n_layers"]):
        p = f"layers.{i}."
        shapes[p + "attn_norm.weight"] = (d,)
        kv = c.get("n_kv_heads", c["n_heads"]) * (d // c["n_heads"])
        for w in ("wq", "wk", "wv", "wo"):
            shapes[p + f"attn.{w}.weight"] = (kv, d) if w in ("wk", "wv") else (d, d)
            if c.get("qkv_bias") and w != "wo":
                shapes[p + f"attn.{w}.bias"] = (kv if w in ("wk", "wv") else d,)
        shapes[p + "ffn_norm.weight"] = (d,)
        if (i + 1) % c["moe_every"] == 0:
            shapes[p + "moe.router.weight"] = (c["n_experts"], d)
            for kind, count in (("experts", c["n_experts"]), ("shared", c["n_shared_experts"])):
                for j in range(count):
                    q = p + f"moe.{kind}.{j}."
                    shapes[q + "w1.weight"] = (e, d)
                    shapes[q + "w3.weight"] = (e, d)
                    shapes[q + "w2.weight"] = (d, e)
        else:
            shapes[p + "ffn.w1.weight"] = (f, d)
            shapes[p + "ffn.w3.weight"] = (f, d)
            shapes[p + "ffn.w2.weight"] = (d, f)
    shapes["norm.weight"] = (d,)
    if not c.get("tie_embeddings"):
        shapes["lm_head.weight"] = (c["vocab_size"], d)
    return shapes


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + CFG["norm_eps"]) * w


def rope(x):  # x: [B, H, T, hd], rotate halves
    t, hd = x.shape[2], x.shape[3]
    half = hd // 2
    freq = CFG["rope_theta"] ** (-torch.arange(half, dtype=torch.float64) / half)
    if CFG.get("rope_scaling") == "llama3":  # transformers' _compute_llama3_parameters
        factor, low, high = CFG["rope_scaling_factor"], CFG["rope_low_freq_factor"], CFG["rope_high_freq_factor"]
        old = CFG["rope_original_max_positions"]
        wavelen = 2 * math.pi / freq
        scaled = torch.where(wavelen > old / low, freq / factor, freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) * ~(wavelen > old / low)
        freq = torch.where(medium, smoothed, scaled)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * freq[None, :]
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def swiglu(x, w1, w3, w2):
    return torch.nn.functional.silu(x @ w1.T) * (x @ w3.T) @ w2.T


def forward(P, inputs, targets):
    c = CFG
    b, t = inputs.shape
    d, h = c["d_model"], c["n_heads"]
    hd = d // h
    x = P["embed.weight"][inputs].reshape(b * t, d)
    aux_total, z_total = 0.0, 0.0
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    for i in range(c["n_layers"]):
        p = f"layers.{i}."
        n1 = rmsnorm(x, P[p + "attn_norm.weight"])
        kvh = c.get("n_kv_heads", h)
        q, k, v = (n1 @ P[p + f"attn.{w}.weight"].T + (P[p + f"attn.{w}.bias"] if c.get("qkv_bias") else 0)
                   for w in ("wq", "wk", "wv"))
        q = q.reshape(b, t, h, hd).transpose(1, 2)
        k, v = (m.reshape(b, t, kvh, hd).transpose(1, 2) for m in (k, v))
        q, k = rope(q), rope(k)
        # transformers' repeat_kv: query head i reads key/value head i // (h // kvh)
        k, v = (m.repeat_interleave(h // kvh, dim=1) for m in (k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(mask, float("-inf"))
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(b * t, d)
        x = x + o @ P[p + "attn.wo.weight"].T
        n2 = rmsnorm(x, P[p + "ffn_norm.weight"])
        if (i + 1) % c["moe_every"] == 0:
            e, kk = c["n_experts"], c["top_k"]
            logits = n2 @ P[p + "moe.router.weight"].T
            probs = logits.softmax(-1)
            top_p, top_i = probs.topk(kk, dim=-1)
            gates = top_p / top_p.sum(-1, keepdim=True) if c["norm_topk"] else top_p
            y = torch.zeros_like(n2)
            for j in range(e):
                q_ = p + f"moe.experts.{j}."
                rows, slot = (top_i == j).nonzero(as_tuple=True)
                if rows.numel():
                    out = swiglu(n2[rows], P[q_ + "w1.weight"], P[q_ + "w3.weight"], P[q_ + "w2.weight"])
                    y = y.index_add(0, rows, out * gates[rows, slot][:, None])
            for j in range(c["n_shared_experts"]):
                q_ = p + f"moe.shared.{j}."
                y = y + swiglu(n2, P[q_ + "w1.weight"], P[q_ + "w3.weight"], P[q_ + "w2.weight"])
            n_tok = n2.shape[0]
            f_e = torch.bincount(top_i.flatten(), minlength=e).to(torch.float64) / (kk * n_tok)
            aux_total = aux_total + e * (f_e * probs.mean(0)).sum()
            z_total = z_total + (torch.logsumexp(logits, -1) ** 2).mean()
        else:
            y = swiglu(n2, P[p + "ffn.w1.weight"], P[p + "ffn.w3.weight"], P[p + "ffn.w2.weight"])
        x = x + y
    logits = rmsnorm(x, P["norm.weight"]) @ P["embed.weight" if c.get("tie_embeddings") else "lm_head.weight"].T
    ce = torch.nn.functional.cross_entropy(logits, targets.reshape(-1))
    total = ce + TRAIN["aux_loss_coef"] * aux_total + TRAIN["z_loss_coef"] * z_total
    return total, dict(total=total.item(), ce=ce.item(), aux=float(aux_total), z=float(z_total))


def write_safetensors(path, tensors, dtype):
    fmt, code = ("<f", "F32") if dtype == torch.float32 else ("<d", "F64")
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().to(dtype).contiguous().flatten().tolist()
        raw = struct.pack(f"<{len(data)}{fmt[1]}", *data)
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES), default="mha")
    out_dir, overrides = CASES[ap.parse_args().case]
    CFG.update(overrides)
    OUT = os.path.join(FIXTURES, out_dir)
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(20261123)
    P = {}
    for name, shape in names().items():
        if len(shape) == 1:
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            t = 0.15 * torch.randn(shape, generator=g)
        P[name] = t.to(torch.float32).to(torch.float64).requires_grad_(True)
    write_safetensors(os.path.join(OUT, "initial.safetensors"), P, torch.float32)
    bsz, t = TRAIN["batch_size"], CFG["seq_len"]
    batches = [torch.randint(0, CFG["vocab_size"], (bsz, t + 1), generator=g) for _ in range(3)]

    total, terms0 = forward(P, batches[0][:, :-1], batches[0][:, 1:])
    total.backward()
    # An expert no token reached has no gradient in PyTorch and a zero one in the Java model.
    grads = {"grad." + n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in P.items()}
    for p in P.values():
        p.grad = None

    decay = [p for n, p in P.items() if p.dim() == 2]
    no_decay = [p for n, p in P.items() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": TRAIN["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=TRAIN["lr"][0], betas=(TRAIN["beta1"], TRAIN["beta2"]), eps=TRAIN["eps"],
                            foreach=False)
    steps = []
    for s in range(3):
        for grp in opt.param_groups:
            grp["lr"] = TRAIN["lr"][s]
        opt.zero_grad()
        total, terms = forward(P, batches[s][:, :-1], batches[s][:, 1:])
        total.backward()
        for p in P.values():  # an expert no token reached: a zero gradient, which AdamW still decays, as in Java
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        terms["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(list(P.values()), TRAIN["grad_clip"]))
        opt.step()
        steps.append(terms)
    after = {"step3." + n: p.detach() for n, p in P.items()}
    write_safetensors(os.path.join(OUT, "expected.safetensors"), {**grads, **after}, torch.float64)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
    with open(os.path.join(OUT, "case.json"), "w") as f:
        json.dump({"train": TRAIN, "batches": [b.tolist() for b in batches], "loss0": terms0, "steps": steps,
                   "torch_version": torch.__version__}, f, indent=1)
    print("wrote", os.path.abspath(OUT), "loss0", terms0)


if __name__ == "__main__":
    main()
