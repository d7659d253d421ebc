# per-component KL sensitivity: KL ~= 0.5 * sigma^2 * h_k when component k of every token gets N(0, sigma^2) noise.
# On 3 calibration windows (never the eval windows); in the PCA basis and in the original channel basis.
from common import *
m = load_model()
cs = np.load(STUDY + "/calib_states.npy")
Q = np.load(STUDY + "/pca.npz")["Q"]
wins = cs[[0, 85, 170]]
ref = [log_softmax(logits_from_split(m, w[None])[0]) for w in wins]
sig = 0.1 * np.sqrt((cs.reshape(-1, D) ** 2).sum(1).mean() / D)
rng = np.random.default_rng(7)
out = {}
t0 = time.time()
for basis_name, B in (("pca", Q), ("chan", np.eye(D))):
    h = np.zeros(D)
    for k in range(D):
        kl = 0
        for w, lr in zip(wins, ref):
            e = rng.standard_normal(w.shape[0]) * sig
            xp = w + e[:, None] * B[k][None, :].astype(np.float32)
            lp = log_softmax(logits_from_split(m, xp[None])[0])
            kl += (np.exp(lr) * (lr - lp)).sum(-1).mean()
        h[k] = 2 * kl / len(wins) / sig ** 2
        if k % 64 == 0: print(basis_name, k, h[k], time.time() - t0, flush=True)
    out[basis_name] = h
np.savez(STUDY + "/sens.npz", sigma=sig, **out)
lam = np.load(STUDY + "/pca.npz")["lam"]
hp = out["pca"]
print("pca h: min %.3g median %.3g max %.3g; corr(log h, log lam) %.2f" % (hp.min(), np.median(hp), hp.max(), np.corrcoef(np.log(hp), np.log(lam))[0, 1]))
hc = out["chan"]; print("chan h: min %.3g median %.3g max %.3g" % (hc.min(), np.median(hc), hc.max()))
