# PCA basis from calibration split states + folding it into the checkpoint (SliceGPT/QuaRot style)
import copy
from common import *

def pca_basis(cs):
    x = cs.reshape(-1, D).astype(np.float64)
    mu = x.mean(0)
    c = np.cov((x - mu).T, bias=True)
    ev, V = np.linalg.eigh(c)
    o = np.argsort(ev)[::-1]
    return mu, ev[o], V[:, o].T  # Q: rows = principal directions, y = Q x

def fold(model, Q, bf16=False):
    """Return a model computing in the rotated basis: its residual stream is x' = Q x."""
    f = copy.copy(model); w = dict(model.w); Q = Q.astype(np.float64)
    def rd(a):
        a = a.astype(np.float32)
        if bf16:  # round to nearest even bf16
            u = a.view(np.uint32).astype(np.uint64)
            u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
            a = u.astype(np.uint32).view(np.float32)
        return a
    w["model.embed_tokens.weight"] = rd(model.w["model.embed_tokens.weight"] @ Q.T)
    for i in range(model.layers):
        p = f"model.layers.{i}."
        g = model.w[p + "input_layernorm.weight"].astype(np.float64)
        for n in ("q_proj", "k_proj", "v_proj"):
            w[p + "self_attn." + n + ".weight"] = rd((model.w[p + "self_attn." + n + ".weight"] * g) @ Q.T)
        w[p + "input_layernorm.weight"] = np.ones(D, np.float32)
        w[p + "self_attn.o_proj.weight"] = rd(Q @ model.w[p + "self_attn.o_proj.weight"])
        g = model.w[p + "post_attention_layernorm.weight"].astype(np.float64)
        for n in ("gate_proj", "up_proj"):
            w[p + "mlp." + n + ".weight"] = rd((model.w[p + "mlp." + n + ".weight"] * g) @ Q.T)
        w[p + "post_attention_layernorm.weight"] = np.ones(D, np.float32)
        w[p + "mlp.down_proj.weight"] = rd(Q @ model.w[p + "mlp.down_proj.weight"])
    g = model.w["model.norm.weight"].astype(np.float64)
    w["model.norm.weight"] = np.ones(D, np.float32)
    f.head_w = rd((model.head_w * g) @ Q.T)
    f.w = w
    return f

if __name__ == "__main__":
    m = load_model()
    cs = np.load(STUDY + "/calib_states.npy")
    mu, lam, Q = pca_basis(cs)
    np.savez(STUDY + "/pca.npz", mu=mu, lam=lam, Q=Q)
    tot = lam.sum(); x = cs.reshape(-1, D).astype(np.float64)
    print("calib: mean energy share %.3f" % ((mu ** 2).sum() / (x ** 2).sum(1).mean()))
    print("variance share of top 8/32/64/128 comps: %s" % [round(lam[:k].sum() / tot, 3) for k in (8, 32, 64, 128)])
    am = lam.mean(); gm = np.exp(np.log(lam).mean())
    print("transform coding gain (arith/geo mean of eigvals): %.2fx (%.2f bits/value at high rate); diag-only (channel var) %.2fx"
          % (am / gm, 0.5 * np.log2(am / gm), np.diag(np.cov(x.T)).mean() / np.exp(np.log(np.diag(np.cov(x.T))).mean())))
    toks = eval_tokens()
    ref, rot = [], []
    for bf in (False, True):
        fm = fold(m, Q, bf16=bf)
        mx, kls, tops, smx = 0, [], [], 0
        for t in toks:
            a = m.run_layers(0, m.layers, m.embed(t), m.new_cache())
            la = m.logits(a)
            b = fm.run_layers(0, fm.layers, fm.embed(t), fm.new_cache())
            lb = fm.logits(b)
            sa = m.run_layers(0, SPLIT, m.embed(t), m.new_cache()); sb = fm.run_layers(0, SPLIT, fm.embed(t), fm.new_cache())
            smx = max(smx, float(np.abs(sa.astype(np.float64) @ Q.T - sb).max()))
            mx = max(mx, float(np.abs(la - lb).max()))
            pa, pb = log_softmax(la), log_softmax(lb)
            kls.append((np.exp(pa) * (pa - pb)).sum(-1).mean()); tops.append((la.argmax(-1) == lb.argmax(-1)).mean())
        print(f"folded ({'bf16' if bf else 'fp32'} weights): max|logit diff| {mx:.3g}  KL {np.mean(kls):.3g}  top1 {np.mean(tops):.5f}  max|split state - Q x| {smx:.3g}")
