# evaluates the calibrated codecs on the 32 eval windows; appends rows to results.jsonl
import sys
from common import *
from calcodecs import *

m = load_model(); ev = np.load(STUDY + "/eval_states.npy"); sc = Scorer(m, ev)
cal = Calib()
X = ev.reshape(-1, D)
out = open(STUDY + "/results.jsonl", "a")

def report(name, bpv, dec, extra=None):
    r = sc.score(dec.reshape(ev.shape)); r.update(codec=name, bits=bpv); r.update(extra or {})
    print(f"{name:42s} bits {bpv:.3f} rel {r['rel_mse']:.5f} KL {r['kl']:.5f} top1 {r['top1']:.4f}"
          + (" " + str(extra) if extra else ""), flush=True)
    out.write(json.dumps(r) + "\n"); out.flush()

def run(groups):
    for g in groups:
        if g == "fixed":
            for scale in ["none", "vec_rms", "vec_maha"]:
                for T in [4.0, 3.0, 2.0]:
                    c = PCACodec(cal, T, scale=scale, quant="lm")
                    dec, I = c.roundtrip(X)
                    ent = entropy_bits(I, c.b, c.cal_I if hasattr(c, "cal_I") else None)
                    report(f"pca-fixed lm {scale} T{T}", c.bits_per_value(), dec,
                           {"idx_entropy_bits_per_comp": round(ent / D, 3), "payload_bits_per_comp": round(c.nbits / D, 3),
                            "bmax": int(c.b.max()), "n_zero": int((c.b == 0).sum())})
        if g == "quant":
            for q in ["uni", "uopt", "trained"]:
                for T in [4.0, 3.0, 2.0]:
                    c = PCACodec(cal, T, scale="vec_maha", quant=q); dec, I = c.roundtrip(X)
                    report(f"pca-fixed {q} vec_maha T{T}", c.bits_per_value(), dec)
            for gain in [0.9, 1.1, 1.2]:
                c = PCACodec(cal, 4.0, scale="vec_maha", quant="lm", gain=gain); dec, I = c.roundtrip(X)
                report(f"pca-fixed lm vec_maha gain{gain} T4.0", c.bits_per_value(), dec)
        if g == "groups":
            for scale in ["grp4", "grp12"]:
                for T in [4.0, 3.0, 2.0]:
                    c = PCACodec(cal, T, scale=scale, quant="lm"); dec, I = c.roundtrip(X)
                    report(f"pca-fixed lm {scale} T{T}", c.bits_per_value(), dec)
        if g == "sens":
            for q in ["lm", "trained"]:
                for T in [4.0, 3.0, 2.0]:
                    c = PCACodec(cal, T, scale="vec_maha", quant=q, weight="sens"); dec, I = c.roundtrip(X)
                    report(f"pca-fixed {q} vec_maha SENS T{T}", c.bits_per_value(), dec, {"bmax": int(c.b.max()), "n_zero": int((c.b == 0).sum())})
        if g == "ecsq":
            for w in ["mse", "sens"]:
                for T in [4.0, 3.0, 2.0]:
                    c = ECSQCodec(cal, T, scale="vec_maha", weight=w); dec, I, bpv = c.roundtrip(X)
                    report(f"pca-ecsq {w} vec_maha T{T}", bpv, dec, {"target": T})
        if g == "ecsq2":
            for sc_, w, T in [("none", "mse", 4.0), ("none", "mse", 3.0), ("vec_maha", "mse", 4.25), ("vec_maha", "mse", 3.5), ("vec_maha", "mse", 3.25)]:
                c = ECSQCodec(cal, T, scale=sc_, weight=w); dec, I, bpv = c.roundtrip(X)
                report(f"pca-ecsq {w} {sc_} T{T}", bpv, dec, {"static_bits_per_comp": round((bpv * N_VEC * D / 8 - FRAME_BYTES) / N_VEC / D * 8, 3),
                       "packet_adaptive_entropy_bits_per_comp": round(c.packet_entropy / D, 3)})
        if g == "tqcal":
            for cs_ in ["none", "invstd", "sens", "sens_std"]:
                for b in [4, 3, 2]:
                    c = TQCalCodec(cal, b, chan_scale=cs_); dec = c.roundtrip(X)
                    report(f"tq-calmean chan:{cs_} b{b}", c.bits_per_value(), dec)
            for b in [4, 3]:
                c = TQCalCodec(cal, b, mean="none"); dec = c.roundtrip(X)
                report(f"tq-emul nomean b{b}", c.bits_per_value(), dec)
        if g == "match":   # PCA codec at the tq bit rates, for apples to apples
            for T in [4.109, 3.109]:
                for w in ["mse", "sens"]:
                    c = PCACodec(cal, T, scale="vec_maha", quant="lm", weight=w); dec, I = c.roundtrip(X)
                    report(f"pca-fixed lm vec_maha {w} T{T}", c.bits_per_value(), dec)

if __name__ == "__main__":
    run(sys.argv[1:])
