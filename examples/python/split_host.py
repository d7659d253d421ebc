#!/usr/bin/env python3
"""split_host.py: one Llama-family model split across two hosts, in Python with NumPy.

The same protocol as examples/cpp/split_host.cpp, so either end can be C++ or Python: the sender
embeds the prompt, runs layers [0, split) and sends the fp16 hidden state through an agp_ptp.Link;
the receiver runs layers [split, N) and the head, and answers with the greedy next token as a
one-value float32 packet.

    split_host.py recv --model DIR --split L [--listen 127.0.0.1] [--port 0]
    split_host.py send --model DIR --split L --port P [--host 127.0.0.1] [--codec tq4]
                       [--prompt TEXT] [--tokens 32] [--check]

The model here is a plain NumPy forward pass (fp32) reading the Hugging Face checkpoint layout
(config.json, *.safetensors with bf16/f16/f32 weights); an MLX or PyTorch host would use its own
model and hand agp_ptp its arrays the same way (anything with the buffer protocol).
"""
import argparse
import glob
import json
import os
import struct
import sys
import time

import numpy as np

import agp_ptp


# --- the model ------------------------------------------------------------------------------

def load_safetensors(path):
    """Tensor name -> float32 array for one .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        raw = data[base + begin:base + end]
        if meta["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif meta["dtype"] in ("F16", "F32"):
            arr = np.frombuffer(raw, dtype="<f2" if meta["dtype"] == "F16" else "<f4")
            arr = arr.astype(np.float32)
        else:
            raise ValueError(f"{path}: {name} has dtype {meta['dtype']} (need BF16, F16 or F32)")
        out[name] = arr.reshape(meta["shape"])
    return out


class Llama:
    """Hugging Face LlamaForCausalLM in NumPy: GQA, RoPE (rotate-half), RMSNorm, SwiGLU."""

    def __init__(self, directory):
        with open(os.path.join(directory, "config.json")) as f:
            c = json.load(f)
        self.hidden = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads", self.heads)
        self.head_dim = c.get("head_dim") or self.hidden // self.heads
        self.vocab = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.w = {}
        for path in sorted(glob.glob(os.path.join(directory, "*.safetensors"))):
            self.w.update(load_safetensors(path))
        self.head_w = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])

    def new_cache(self):
        return {"k": [None] * self.layers, "v": [None] * self.layers, "length": 0}

    def embed(self, tokens):
        return self.w["model.embed_tokens.weight"][np.asarray(tokens)].copy()

    def _norm(self, x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * weight

    def _rope(self, x, positions):
        half = self.head_dim // 2
        inv = 1.0 / (self.theta ** (np.arange(0, self.head_dim, 2, dtype=np.float64) / self.head_dim))
        ang = positions[:, None].astype(np.float64) * inv[None, :]
        cos = np.concatenate([np.cos(ang)] * 2, -1).astype(np.float32)[:, None, :]
        sin = np.concatenate([np.sin(ang)] * 2, -1).astype(np.float32)[:, None, :]
        rotated = np.concatenate([-x[..., half:], x[..., :half]], -1)
        return x * cos + rotated * sin

    def run_layers(self, first, last, x, cache):
        """Layers [first, last) on x [T, hidden] for the T positions after the cached ones."""
        t = x.shape[0]
        start = 0 if cache["k"][first] is None else cache["k"][first].shape[0]
        positions = np.arange(start, start + t)
        group = self.heads // self.kv_heads
        for i in range(first, last):
            p = f"model.layers.{i}."
            h = self._norm(x, self.w[p + "input_layernorm.weight"])
            q = (h @ self.w[p + "self_attn.q_proj.weight"].T).reshape(t, self.heads, self.head_dim)
            k = (h @ self.w[p + "self_attn.k_proj.weight"].T).reshape(t, self.kv_heads, self.head_dim)
            v = (h @ self.w[p + "self_attn.v_proj.weight"].T).reshape(t, self.kv_heads, self.head_dim)
            q, k = self._rope(q, positions), self._rope(k, positions)
            if cache["k"][i] is not None:
                k = np.concatenate([cache["k"][i], k])
                v = np.concatenate([cache["v"][i], v])
            cache["k"][i], cache["v"][i] = k, v
            kk = np.repeat(k, group, axis=1)  # [S, heads, d]
            vv = np.repeat(v, group, axis=1)
            scores = np.einsum("thd,shd->hts", q, kk) / np.sqrt(self.head_dim)
            s_total = kk.shape[0]
            causal = np.arange(s_total)[None, :] > (positions[:, None])
            scores = np.where(causal[None], -np.inf, scores)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attn = np.einsum("hts,shd->thd", scores, vv).reshape(t, self.heads * self.head_dim)
            x = x + attn @ self.w[p + "self_attn.o_proj.weight"].T
            h = self._norm(x, self.w[p + "post_attention_layernorm.weight"])
            gate = h @ self.w[p + "mlp.gate_proj.weight"].T
            up = h @ self.w[p + "mlp.up_proj.weight"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ self.w[p + "mlp.down_proj.weight"].T
        return x.astype(np.float32)

    def logits(self, x):
        return self._norm(x, self.w["model.norm.weight"]) @ self.head_w.T


# --- the two hosts ------------------------------------------------------------------------

def link_settings(args, model):
    return {"fingerprint": agp_ptp.checkpoint_fingerprint(args.model, args.split, model.hidden),
            "model_id": os.path.basename(os.path.normpath(args.model)),
            "split_layer": args.split, "chunk_vectors": 64}


def receive(args, model):
    server = agp_ptp.Server(args.listen, args.port, **link_settings(args, model))
    print(f"port {server.port}", flush=True)
    link = server.accept(60000)
    cache = model.new_cache()
    steps = 0
    while True:
        try:
            info = link.next_packet(30000)
        except agp_ptp.Error as e:
            if e.name == "connection_closed":
                break
            raise
        if len(info.shape) != 2 or info.shape[1] != model.hidden:
            raise SystemExit(f"split_host.py: expected a [tokens, hidden] state, got {info.shape}")
        x = link.receive(dtype="float32", timeout_ms=30000)
        x = model.run_layers(args.split, model.layers, x, cache)
        token = np.array([np.argmax(model.logits(x[-1:])[0])], dtype=np.float32)
        link.send(token, "raw", vector_axis=0, name="next_token")
        steps += 1
    print(f"served {steps} steps; the sender closed the link")


def printable(tokens):
    return "".join(chr(t) if 32 <= t < 127 or t == 10 else "?" for t in tokens)


def send(args, model):
    link = agp_ptp.Link.connect(args.host, args.port, **link_settings(args, model))
    ids = list(args.prompt.encode())
    cache = model.new_cache()
    feed, generated, step_us, wire = ids, [], [], 0
    for _ in range(args.tokens):
        t0 = time.perf_counter()
        state = model.run_layers(0, args.split, model.embed(feed), cache).astype(np.float16)
        wire += link.send(state, args.codec, name="hidden", layout="SD").wire_bytes
        token = int(link.receive(timeout_ms=30000)[0])
        step_us.append((time.perf_counter() - t0) * 1e6)
        generated.append(token)
        feed = [token]
    link.close()
    print(f"prompt:    {printable(ids)}")
    print(f"generated: {printable(generated)}")
    print(f"{args.tokens} tokens, codec {args.codec}, {wire} state bytes on the wire, "
          f"step p50 {sorted(step_us)[len(step_us) // 2]:.0f} us")
    if args.check:  # the same greedy generation on one host, uncompressed
        full, feed, local = model.new_cache(), ids, []
        for _ in range(args.tokens):
            x = model.run_layers(0, model.layers, model.embed(feed), full)
            local.append(int(np.argmax(model.logits(x[-1:])[0])))
            feed = [local[-1]]
        agree = sum(a == b for a, b in zip(generated, local))
        print(f"check: {agree} of {args.tokens} tokens agree with the uncompressed model on one host")


def main():
    p = argparse.ArgumentParser(description="A Llama-family model split across two hosts.")
    p.add_argument("role", choices=["send", "recv"])
    p.add_argument("--model", required=True, help="checkpoint directory (config.json, *.safetensors)")
    p.add_argument("--split", type=int, required=True, help="first layer of the receiving host")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--codec", default="tq4")
    p.add_argument("--prompt", default="#include <")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    model = Llama(args.model)
    if not 1 <= args.split < model.layers:
        p.error(f"--split must be in [1, {model.layers})")
    if args.tokens < 1:
        p.error("--tokens must be at least 1")
    try:
        receive(args, model) if args.role == "recv" else send(args, model)
    except agp_ptp.Error as e:
        sys.exit(f"split_host.py: {e}")


if __name__ == "__main__":
    main()
