#!/usr/bin/env python3
"""Scores a Hugging Face model directory with transformers' own model class, as moe-eval scores it.

    PYTHONPATH=<transformers, huggingface_hub, safetensors sources> python3 tools/hf_check.py \
        --model DIR (--text FILE | --tokens FILE.bin) [--batch 8]

Loads DIR with AutoModelForCausalLM.from_pretrained (float32, eager attention), cuts the token stream into
consecutive non-overlapping windows of max_position_embeddings + 1 tokens (the tail is dropped), predicts
every position but the last of a window, and prints {"loss": mean CE, "tokens": count, "class": ...}: the
same definition as moe-eval, so the two losses compare directly. --text reads a file's bytes as tokens
(byte-level models), --tokens little-endian int32 ids.

Machines without safetensors' Rust extension get a small pure-Python reader of the format below (the
header, contiguous in-bounds offsets, F32/F64/BF16/F16/I64 tensors), enough for from_pretrained.
"""
import argparse
import json
import struct
import sys
import types


def _install_safetensors_reader():
    try:
        import safetensors._safetensors_rust  # noqa: F401
        return
    except ImportError:
        pass
    import torch

    dtypes = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32}

    class SafetensorError(Exception):
        pass

    class safe_open:
        def __init__(self, filename, framework="pt", device="cpu"):
            with open(filename, "rb") as f:
                self._data = f.read()
            (n,) = struct.unpack("<Q", self._data[:8])
            header = json.loads(self._data[8:8 + n])
            self._meta = header.pop("__metadata__", None)
            self._base = 8 + n
            pos = 0
            for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
                begin, end = e["data_offsets"]
                if begin != pos or end > len(self._data) - self._base:
                    raise SafetensorError(f"{filename}: tensor {name} has bad data_offsets {e['data_offsets']}")
                pos = end
            if pos != len(self._data) - self._base:
                raise SafetensorError(f"{filename}: bytes after the last tensor")
            self._header = header

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def keys(self):
            return list(self._header)

        def metadata(self):
            return self._meta

        def get_tensor(self, name):
            e = self._header[name]
            begin, end = e["data_offsets"]
            buf = bytearray(self._data[self._base + begin:self._base + end])
            t = torch.frombuffer(buf, dtype=dtypes[e["dtype"]]) if buf else torch.empty(0, dtype=dtypes[e["dtype"]])
            return t.reshape(e["shape"]).clone()

    def _unsupported(*a, **k):
        raise SafetensorError("writing is not supported by this reader")

    mod = types.ModuleType("safetensors._safetensors_rust")
    mod.SafetensorError, mod.safe_open, mod.__version__ = SafetensorError, safe_open, "0.4.2"
    mod.serialize = mod.serialize_file = mod.deserialize = _unsupported
    sys.modules["safetensors._safetensors_rust"] = mod


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--text")
    g.add_argument("--tokens")
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    _install_safetensors_reader()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    if a.text:
        with open(a.text, "rb") as f:
            ids = list(f.read())
    else:
        with open(a.tokens, "rb") as f:
            raw = f.read()
        ids = list(struct.unpack(f"<{len(raw) // 4}i", raw))
    w = cfg.max_position_embeddings + 1
    windows = torch.tensor(ids[:len(ids) // w * w], dtype=torch.long).reshape(-1, w)
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, windows.shape[0], a.batch):
            x = windows[b:b + a.batch]
            logits = model(input_ids=x[:, :-1]).logits.double()
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                       reduction="sum").item()
            count += x[:, 1:].numel()
    print(json.dumps({"loss": round(total / count, 6), "tokens": count, "class": type(model).__name__}))


if __name__ == "__main__":
    main()
