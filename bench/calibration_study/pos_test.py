# does the first position (attention sink) deserve a finer step? quantize rows < P with step / F
import sys
from ecsq_adaptive import *
m = load_model(); ev = np.load(STUDY + "/eval_states.npy"); sc = Scorer(m, ev); cal = Calib(); X = ev.reshape(-1, D)
w = (cal.h_pca / cal.h_pca.mean()) ** 0.5
for P, F in [(1, 8.0), (4, 4.0)]:
    out, bp = [], []
    for p in range(0, len(X), N_VEC):
        R = cal.to_basis(X[p:p + N_VEC]).copy(); f = np.ones((N_VEC, 1)); f[:P] = F
        Zh, bpv, info = encode_packet(R * f, w, 4.0, 0, 2)
        out.append(cal.from_basis((Zh / f).astype(np.float32))); bp.append(bpv)
    r = sc.score(np.concatenate(out).reshape(ev.shape))
    print(f"adaptive sens^0.5 T4.0, first {P} positions step/{F}: bits {np.mean(bp):.3f} rel {r['rel_mse']:.5f} KL {r['kl']:.5f} top1 {r['top1']:.4f}", flush=True)
    open(STUDY + "/results.jsonl", "a").write(json.dumps(dict(r, codec=f"pca-ecsq-adaptive sens^0.5 none T4.0 pos<{P} step/{F}", bits=float(np.mean(bp)))) + "\n")
