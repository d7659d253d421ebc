# real project codecs (agp_ptp) on each eval window packet [256,384]
from common import *
import agp_ptp
m=load_model(); ev=np.load(STUDY+"/eval_states.npy")
t=time.time(); sc=Scorer(m, ev); print("ref logits", time.time()-t)
res={}
for c in ["tq2","tq3","tq4","tq5","ec2","ec3","ec4","ec5"]:
    dec=[]; nb=0
    for w in ev:
        f=agp_ptp.encode(np.ascontiguousarray(w), c); nb+=len(f); dec.append(agp_ptp.decode(f))
    r=sc.score(np.stack(dec)); r["bits"]=8*nb/ev.size; res[c]=r
    print(f"{c:5s} bits {r['bits']:.3f} rel {r['rel_mse']:.5f} KL {r['kl']:.5f} top1 {r['top1']:.4f}", flush=True)
json.dump(res, open(STUDY+"/baselines.json","w"), indent=1)
