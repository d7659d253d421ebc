# how far is the parametric (Gaussian/Laplace per component) coding model from the packet's empirical entropy?
from ecsq_adaptive import *
from calcodecs import entropy_bits
cal = Calib(); X = np.load(STUDY + "/eval_states.npy").reshape(-1, D)
gaps = []
for p in range(0, 32 * N_VEC, 4 * N_VEC):
    R = cal.to_basis(X[p:p + N_VEC]); step = 0.0
    Zh, bpv, info = encode_packet(R, np.ones(D), 4.0, 0, 2)
    st = info["step"]; Zs = R / st; I = np.round(Zs); sg = side_sigma(Zs)
    mb, lap = model_bits(I, sg)
    emp = entropy_bits(I.astype(np.int32), None)
    # generalized-Gaussian-ish alternative: per-component best of shapes beta in {1,1.5,2,2.5}
    gaps.append((mb.sum() / N_VEC / D, emp / D))
g = np.array(gaps); print("model bits/comp %.3f, empirical (ideal adaptive, no table cost) %.3f, gap %.3f" % (g[:, 0].mean(), g[:, 1].mean(), (g[:, 0] - g[:, 1]).mean()))
