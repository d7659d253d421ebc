# folded checkpoint stored as f16 (instead of bf16): logits vs the original model
from fold import *
m = load_model(); p = np.load(STUDY + "/pca.npz"); Q = p["Q"]
fm = fold(m, Q)
for k in list(fm.w):
    fm.w[k] = fm.w[k].astype(np.float16).astype(np.float32)
fm.head_w = fm.head_w.astype(np.float16).astype(np.float32)
mx, kls, tops = 0, [], []
for t in eval_tokens():
    la = m.logits(m.run_layers(0, m.layers, m.embed(t), m.new_cache()))
    lb = fm.logits(fm.run_layers(0, fm.layers, fm.embed(t), fm.new_cache()))
    mx = max(mx, float(np.abs(la - lb).max())); pa, pb = log_softmax(la), log_softmax(lb)
    kls.append((np.exp(pa) * (pa - pb)).sum(-1).mean()); tops.append((la.argmax(-1) == lb.argmax(-1)).mean())
print(f"folded (f16 weights): max|logit diff| {mx:.3g}  KL {np.mean(kls):.3g}  top1 {np.mean(tops):.5f}")
