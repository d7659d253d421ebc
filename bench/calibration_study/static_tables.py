"""The calibrated codec's chunk format emulated exactly (static prefix-code tables from
codec/src/entropy_tables.inc or a generated copy, contiguous component groups, raw low bits):
rate overhead against the ideal entropy-coded quantizer, and the continuation's fidelity."""
import re, sys
from common import *

def load_tables(path):
    txt = open(path).read()
    lens = re.search(r"kEntropyLengths\[\]\[64\] = \{(.*?)\n\};", txt, re.S).group(1)
    L = np.array([[int(v) for v in row.split(",") if v.strip()] for row in re.findall(r"\{([0-9,]+)\}", lens)])
    rec = re.search(r"kEntropyRecon\[\]\[63\] = \{(.*?)\n\};", txt, re.S).group(1)
    R = np.array([[float(v.rstrip("f")) for v in row.split(",") if v.strip()] for row in re.findall(r"\{([^}]*)\}", rec)])
    return L, R

def tables_for(family):
    base = {0: 0, 1: 120, 2: 144}[family]
    n = 40 if family == 0 else 8
    return [base + sh * n + j for sh in range(3) for j in range(n)]

def make_groups(sig, ratio):
    groups, start = [], 0
    for c in range(1, len(sig) + 1):
        if c == len(sig) or sig[start] / sig[c] > ratio:
            groups.append((start, c)); start = c
    return groups

def code_chunk(Z, groups, L, Rc, step, zero_below):
    """Z [n, D] residual in the basis. Returns (bits, Zhat)."""
    n = Z.shape[0]
    bits = 32.0 + 8 * 2 * len(groups)           # step + (k, table) per group
    Zh = np.zeros_like(Z)
    for a, b in groups:
        z = Z[:, a:b] / step
        s = np.sqrt((z ** 2).mean())
        if s < zero_below:
            continue                              # zero group: no bits, reconstruct the mean
        k = max(0, int(np.floor(np.log2(s))) - 1) if s > 0 else 0
        q = np.round(z).astype(np.int64)
        h = q >> k
        fam = 0 if k == 0 else (1 if k == 1 else 2)
        sym = np.where(np.abs(h) <= 31, h + 31, 63)
        hist = np.bincount(sym.ravel(), minlength=64)
        best, bt = None, None
        for t in tables_for(fam):
            Lt = L[t]
            if np.any((hist[:63] > 0) & (Lt[:63] == 0)):
                esc = hist[63] + hist[:63][Lt[:63] == 0].sum()
                cost = (hist[:63] * Lt[:63]).sum() + esc * (Lt[63] + 32)
            else:
                cost = (hist[:63] * Lt[:63]).sum() + hist[63] * (Lt[63] + 32)
            if best is None or cost < best: best, bt = cost, t
        bits += best + k * q.size
        if k == 0:
            rec = np.where(np.abs(h) <= 31, Rc[bt][np.clip(h + 31, 0, 62)], h)
            Zh[:, a:b] = rec * step
        else:
            Zh[:, a:b] = q * step
    return bits, Zh

def ideal_bits(Z, step):
    q = np.round(Z / step).astype(np.int64); tot = 0
    for c in range(Z.shape[1]):
        _, cnt = np.unique(q[:, c], return_counts=True); p = cnt / cnt.sum(); tot -= (cnt * np.log2(p)).sum()
    return tot

if __name__ == "__main__":
    L, Rc = load_tables(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--")
                        else os.path.join(ROOT, "codec", "src", "entropy_tables.inc"))
    cs = np.load(STUDY + "/calib_states.npy").reshape(-1, D).astype(np.float64)
    ev = np.load(STUDY + "/eval_states.npy").astype(np.float32)
    mu = cs.mean(0); C = np.cov((cs - mu).T); lam, Q = np.linalg.eigh(C); o = np.argsort(lam)[::-1]
    lam, Q = lam[o], Q[:, o]; sig = np.sqrt(lam)
    FRAME = 320 + 64 * 2
    for ratio in [2 ** 0.25]:
        groups = make_groups(sig, ratio)
        for target in [4.0]:
            out, rates, ideal = [], [], []
            for w in range(ev.shape[0]):
                Z = (ev[w] - mu) @ Q
                budget = target * Z.size - 8 * FRAME
                lo, hi = np.log(1e-4), np.log(10.0)
                for _ in range(18):
                    mid = 0.5 * (lo + hi)
                    if code_chunk(Z, groups, L, Rc, np.exp(mid), 0.3)[0] > budget: lo = mid
                    else: hi = mid
                step = np.exp(hi); bits, Zh = code_chunk(Z, groups, L, Rc, step, 0.3)
                rates.append((bits + 8 * FRAME) / Z.size); ideal.append((ideal_bits(Z, step) + 8 * FRAME) / Z.size)
                out.append((Zh @ Q.T + mu).astype(np.float32))
            rel = float(np.mean([(((ev[w] - out[w]) ** 2).sum(-1) / (ev[w] ** 2).sum(-1)).mean() for w in range(len(out))]))
            print(f"ratio {ratio:.3f} groups {len(groups)} target {target}: bits {np.mean(rates):.3f} ideal-at-same-step {np.mean(ideal):.3f} rel_mse {rel:.5f}", flush=True)
            if "--score" in sys.argv:
                sc = Scorer(load_model(), ev).score(np.stack(out)); print(sc, flush=True)
