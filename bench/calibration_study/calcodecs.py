"""Calibrated codecs emulated in NumPy. A packet = one window [256, 384]. Everything a packet carries is counted."""
from common import *
from quant import codebook, allocate, quantize_lm

N_VEC = 256

def f16(a):
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)

class Calib:
    def __init__(self):
        p = np.load(STUDY + "/pca.npz")
        self.mu, self.lam, self.Q = p["mu"], p["lam"], p["Q"]
        self.mu32 = f16(self.mu)                    # stored with the calibration (f16)
        self.Q32 = self.Q.astype(np.float32)
        cs = np.load(STUDY + "/calib_states.npy").reshape(-1, D)
        self.R = (cs - self.mu32) @ self.Q32.T      # calibration residuals in the PCA basis
        self.Xc = cs
        s = np.load(STUDY + "/sens.npz") if os.path.exists(STUDY + "/sens.npz") else None
        self.h_pca = s["pca"] if s is not None else np.ones(D)
        self.h_chan = s["chan"] if s is not None else np.ones(D)

    def to_basis(self, x):   # what the folded model's split state minus mean is
        return (x - self.mu32) @ self.Q32.T

    def from_basis(self, r):
        return r @ self.Q32 + self.mu32

def budget_bits_per_vector(target_bpv, side_bytes_per_vec, n_sections):
    total = target_bpv * N_VEC * D / 8 - FRAME_BYTES - SECTION_BYTES * (n_sections - 1)
    return 8 * int(np.floor(total / N_VEC - side_bytes_per_vec))  # whole bytes per vector

# ---- per-vector / per-group scales ------------------------------------------------------------
def vec_scales(R, mode, lam, groups=None):
    """Returns s [n, G] (G groups; G=1 per-vector) as the decoder sees them (quantized), the group index per comp."""
    n = R.shape[0]
    if mode == "none":
        return np.ones((n, 1), np.float32), np.zeros(D, int), 0
    if mode == "vec_rms":       # ||r|| / sqrt(sum lam): f16
        s = np.sqrt((R ** 2).sum(1) / lam.sum())
        return f16(s)[:, None], np.zeros(D, int), 2
    if mode == "vec_maha":      # sqrt(mean r_k^2 / lam_k): f16
        s = np.sqrt((R ** 2 / lam).mean(1))
        return f16(s)[:, None], np.zeros(D, int), 2
    if mode.startswith("grp"):  # grpG: G contiguous groups (components sorted by variance), u8 log2 scale, 1/16 octave
        G = int(mode[3:]); gid = np.arange(D) * G // D
        s = np.stack([np.sqrt((R[:, gid == g] ** 2 / lam[gid == g]).mean(1)) for g in range(G)], 1)
        code = np.clip(np.round(np.log2(np.maximum(s, 1e-8)) * 16) + 128, 0, 255)
        return (2.0 ** ((code - 128) / 16)).astype(np.float32), gid, G
    raise ValueError(mode)

class PCACodec:
    """r = Q(x - mu); z_k = r_k / (s_v,g(k) * sigma_k); z_k -> b_k-bit quantizer; fixed allocation from calibration."""
    def __init__(self, cal, target_bpv, scale="vec_maha", quant="lm", weight="mse", gain=1.0, bmax=8):
        self.cal, self.scale, self.quant, self.gain = cal, scale, quant, gain
        S, self.gid, self.side = vec_scales(cal.R, scale, cal.lam)
        Z = cal.R / S[:, self.gid]
        self.sigma = Z.std(0) * gain
        self.w = cal.h_pca if weight == "sens" else np.ones(D)
        self.nbits = budget_bits_per_vector(target_bpv, self.side, 2 if self.side else 1)
        self.b = allocate(self.w * self.sigma ** 2, self.nbits, bmax=bmax)
        if quant == "uopt":  # per-component uniform step fitted on calibration (covers the tails)
            Zn = Z / self.sigma; self.ust = np.zeros(D)
            for k in range(D):
                bk = self.b[k]
                if bk == 0: continue
                n = 2 ** bk; zk = Zn[::2, k]; best = None
                for mult in np.linspace(0.8, 3.0, 45):
                    st = _ustep(bk) * mult
                    q = np.clip(np.floor(zk / st), -n // 2, n // 2 - 1)
                    e = ((zk - (q + 0.5) * st) ** 2).mean()
                    if best is None or e < best[0]: best = (e, st)
                self.ust[k] = best[1]
        if quant == "trained":  # per-component 1-D Lloyd (k-means) codebooks from calibration z's
            self.tables = []
            Zn = Z / self.sigma
            for k in range(D):
                bk = self.b[k]
                if bk == 0: self.tables.append(np.zeros(1)); continue
                c = codebook(bk)[0].copy(); zk = Zn[:, k]
                for _ in range(60):
                    t = 0.5 * (c[1:] + c[:-1]); idx = np.searchsorted(t, zk)
                    cnt = np.bincount(idx, minlength=len(c)); sm = np.bincount(idx, zk, minlength=len(c))
                    c = np.where(cnt > 0, sm / np.maximum(cnt, 1), c)
                self.tables.append(np.sort(c))

    def bits_per_value(self):
        return bits_per_value(N_VEC * ((self.nbits + 7) // 8 + self.side), 2 if self.side else 1)

    def roundtrip(self, x):
        """x [n, D] -> (decoded x [n, D], indices [n, D])."""
        R = self.cal.to_basis(x)
        S, _, _ = vec_scales(R, self.scale, self.cal.lam)
        Z = R / S[:, self.gid] / self.sigma
        Zh = np.zeros_like(Z); I = np.zeros(Z.shape, np.int32)
        for bk in np.unique(self.b):
            cols = np.nonzero(self.b == bk)[0]
            if bk == 0: continue
            if self.quant == "lm":
                I[:, cols], Zh[:, cols] = quantize_lm(Z[:, cols], bk)
            elif self.quant == "uni":
                from quant import uniform_step_gauss
                st = _ustep(bk); n = 2 ** bk
                q = np.clip(np.floor(Z[:, cols] / st), -n // 2, n // 2 - 1)
                I[:, cols] = (q + n // 2).astype(np.int32); Zh[:, cols] = (q + 0.5) * st
            elif self.quant == "uopt":
                st = self.ust[cols]; n = 2 ** bk
                q = np.clip(np.floor(Z[:, cols] / st), -n // 2, n // 2 - 1)
                I[:, cols] = (q + n // 2).astype(np.int32); Zh[:, cols] = (q + 0.5) * st
            elif self.quant == "trained":
                for k in cols:
                    c = self.tables[k]; t = 0.5 * (c[1:] + c[:-1])
                    I[:, k] = np.searchsorted(t, Z[:, k]); Zh[:, k] = c[I[:, k]]
        Rh = (Zh * self.sigma * S[:, self.gid]).astype(np.float32)
        return self.cal.from_basis(Rh), I

_US = {}
def _ustep(b):
    if b not in _US:
        from quant import uniform_step_gauss
        _US[b] = uniform_step_gauss(b)[0] if b <= 6 else 8.0 / 2 ** b * 1.2
    return _US[b]

def entropy_bits(I, b, cal_I=None):
    """Sum over components of the empirical entropy (bits) of indices; with cal_I: cross-entropy under
    static calibration histograms (add-0.5 smoothing) = what a static-table rANS coder would spend."""
    tot = 0.0
    for k in range(I.shape[1]):
        if b is not None and b[k] == 0: continue
        if cal_I is None:
            _, c = np.unique(I[:, k], return_counts=True); p = c / c.sum()
            tot += -(p * np.log2(p)).sum() * I.shape[0]
        else:
            lo = min(I[:, k].min(), cal_I[:, k].min()); hi = max(I[:, k].max(), cal_I[:, k].max())
            h = np.bincount(cal_I[:, k] - lo, minlength=hi - lo + 1) + 0.5; p = h / h.sum()
            tot += -np.log2(p[I[:, k] - lo]).sum()
    return tot / I.shape[0]   # bits per vector

class ECSQCodec:
    """Entropy-coded uniform quantizer in the PCA basis: step_k = step / sqrt(w_k) in units of s_v (per-vector scale),
    deadzone-free midtread, reconstruction at calibration centroids; rate = static-table cross-entropy."""
    def __init__(self, cal, target_bpv, scale="vec_maha", weight="mse"):
        self.cal, self.scale = cal, scale
        S, self.gid, self.side = vec_scales(cal.R, scale, cal.lam)
        self.Zc = cal.R / S[:, self.gid]
        self.w = cal.h_pca / cal.h_pca.mean() if weight == "sens" else np.ones(D)
        self.side_bytes = self.side
        avail = budget_bits_per_vector(target_bpv, self.side, 2 if self.side else 1)
        lo, hi = np.log(1e-3), np.log(10.0)
        sub = self.Zc[::4]
        for _ in range(30):   # bisection on the calibration rate (half of it trains, half measures)
            mid = 0.5 * (lo + hi); self.step = np.exp(mid)
            Ia = self._idx(sub[0::2]); Ib = self._idx(sub[1::2])
            r = entropy_bits(Ib, None, Ia)
            if r > avail: lo = mid
            else: hi = mid
        self.step = np.exp(hi)
        self.Ic = self._idx(self.Zc)
        self.avail = avail
        # centroid reconstruction per component per level
        self.cent = []
        for k in range(D):
            i = self.Ic[:, k]; off = i.min()
            cnt = np.bincount(i - off); sm = np.bincount(i - off, self.Zc[:, k])
            self.cent.append((off, np.where(cnt > 0, sm / np.maximum(cnt, 1), (np.arange(len(cnt)) + off) * self.st[k])))

    def _idx(self, Z):
        self.st = self.step / np.sqrt(self.w)
        return np.round(Z / self.st).astype(np.int32)

    def roundtrip(self, x):
        R = self.cal.to_basis(x)
        S, _, _ = vec_scales(R, self.scale, self.cal.lam)
        Z = R / S[:, self.gid]; I = self._idx(Z); Zh = I * self.st
        for k in range(D):
            off, c = self.cent[k]; j = I[:, k] - off; ok = (j >= 0) & (j < len(c))
            Zh[ok, k] = c[j[ok]]
        rate = entropy_bits(I, None, self.Ic)   # bits per vector, static tables
        self.packet_entropy = np.mean([entropy_bits(I[i:i + N_VEC], None) for i in range(0, len(I), N_VEC)])
        bpv = bits_per_value(N_VEC * (rate / 8 + self.side_bytes) + 0, 2 if self.side else 1)
        return self.cal.from_basis((Zh * S[:, self.gid]).astype(np.float32)), I, bpv

# ---- no-fold alternative: mean removal + per-channel scale + TurboQuant rotation + Lloyd-Max --------------
def _signs(seed=0x5eed):
    return np.where(np.random.default_rng(seed).integers(0, 2, D) == 1, -1.0, 1.0).astype(np.float32)

def _fwht(a):
    a = a.copy(); m = a.shape[-1]; h = 1
    while h < m:
        a = a.reshape(a.shape[:-1] + (m // (2 * h), 2, h))
        u = a[..., 0, :].copy(); w = a[..., 1, :].copy()
        a[..., 0, :] = u + w; a[..., 1, :] = u - w
        a = a.reshape(a.shape[:-3] + (m,)); h *= 2
    return a

BLOCKS = [(0, 256), (256, 128)]

class TQCalCodec:
    """x -> (x - mu) * a (per-channel scale) -> signs -> WHT blocks -> per-block f16 norm -> Lloyd-Max b bits."""
    def __init__(self, cal, bits, chan_scale="none", mean="calib", perm=None):
        self.cal, self.bits, self.mean = cal, bits, mean
        self.s = _signs()
        x = cal.Xc
        if chan_scale == "none": a = np.ones(D)
        elif chan_scale == "invstd": a = 1.0 / (x - cal.mu32).std(0)
        elif chan_scale == "sens": a = np.sqrt(cal.h_chan)        # error in x ~ 1/a^2: less error where sensitive
        elif chan_scale == "sens_std":                         # minimize sum h_j var_j-weighted: a ~ (h_j)^(1/4)/sqrt(std)?
            a = (cal.h_chan) ** 0.25 / np.sqrt((x - cal.mu32).std(0))
        self.a = (a / np.sqrt((a ** 2).mean())).astype(np.float32)

    def bits_per_value(self):
        side = 2 * D if self.mean == "packet" else 0
        return bits_per_value(N_VEC * (self.bits * D // 8 + 2 * len(BLOCKS)) + side, 2)

    def roundtrip(self, x):
        mu = f16(x.mean(0)) if self.mean == "packet" else (self.cal.mu32 if self.mean == "calib" else 0)
        u = (x - mu) * self.a * self.s
        c, _ = codebook(self.bits)
        out = np.zeros_like(u)
        for o, m in BLOCKS:
            blk = u[:, o:o + m]; nrm = np.sqrt((blk ** 2).sum(1)); y = _fwht(blk) / np.sqrt(m)
            z = y * np.sqrt(m) / np.maximum(nrm, 1e-30)[:, None]
            _, zh = quantize_lm(z, self.bits)
            yh = zh * (f16(nrm) / np.sqrt(m))[:, None]
            out[:, o:o + m] = _fwht(yh) / np.sqrt(m)
        return out * self.s / self.a + mu
