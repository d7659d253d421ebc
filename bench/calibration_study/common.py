"""Shared pieces for the calibrated-codec study (all written for this study).
Model: the project's NumPy Llama (imported from examples/python/split_host.py, read-only)."""
import os, sys, glob, json, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1"); os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))  # the repository
sys.path.insert(0, os.path.join(ROOT, "build", "release", "python"))
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
try:
    import agp_ptp  # noqa: F401  (split_host imports it; the model code itself doesn't need it)
except Exception:
    import types; sys.modules["agp_ptp"] = types.ModuleType("agp_ptp")  # the build may be rewriting the .so
from split_host import Llama  # noqa: E402

MODEL = os.environ.get("AGP_DEVMODEL_DIR",
                       os.path.join(ROOT, "..", "shared", "fixtures", "devmodel"))
SPLIT = 2
D = 384
STUDY = os.path.join(ROOT, "build", "calibration_study")  # generated states and tables
os.makedirs(STUDY, exist_ok=True)

def load_model():
    return Llama(MODEL)

def eval_tokens():
    return np.fromfile(os.path.join(MODEL, "windows.bin"), dtype=np.uint8).reshape(32, 256)

def calib_tokens(n=256, seed=1234):
    """n windows of 256 bytes from /usr/include files that share no long line with the eval windows."""
    excl = set(open(os.path.join(STUDY, "exclude.txt")).read().split())
    files = sorted(f for f in glob.glob("/usr/include/**/*", recursive=True)
                   if os.path.isfile(f) and not os.path.islink(f) and os.path.realpath(f) not in excl
                   and "/node/openssl/archs/" not in f)
    rng = np.random.default_rng(seed)
    rng.shuffle(files)
    out = []
    for f in files:
        b = open(f, "rb").read()
        if len(b) < 1024:
            continue
        off = int(rng.integers(0, len(b) - 256))
        out.append(np.frombuffer(b[off:off + 256], dtype=np.uint8))
        if len(out) == n:
            break
    return np.stack(out)

def split_state(model, toks):
    """[W,256] tokens -> [W,256,D] float32 state entering layer SPLIT."""
    return np.stack([model.run_layers(0, SPLIT, model.embed(t), model.new_cache()) for t in toks])

def logits_from_split(model, states):
    """[W,256,D] -> [W,256,V] float32 logits (layers SPLIT.. + final norm + head)."""
    out = []
    for s in states:
        x = model.run_layers(SPLIT, model.layers, s.astype(np.float32), model.new_cache())
        out.append(model.logits(x).astype(np.float32))
    return np.stack(out)

def log_softmax(z):
    z = z.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))

class Scorer:
    """KL(p_ref || p_codec) mean over positions, top-1 agreement, rel MSE (mean over vectors)."""
    def __init__(self, model, states):
        self.model, self.states = model, states
        self.ref_logits = logits_from_split(model, states)
        self.ref_lp = log_softmax(self.ref_logits)
        self.ref_top = self.ref_logits.argmax(-1)

    def score(self, decoded):
        x, y = self.states, decoded
        rel = float((((x - y) ** 2).sum(-1) / (x ** 2).sum(-1)).mean())
        lg = logits_from_split(self.model, decoded)
        lp = log_softmax(lg)
        kl = float((np.exp(self.ref_lp) * (self.ref_lp - lp)).sum(-1).mean())
        top = float((lg.argmax(-1) == self.ref_top).mean())
        return dict(rel_mse=rel, kl=kl, top1=top)

FRAME_BYTES = 320   # ptp framing of a raw [256,384] packet (prefix, header, descriptor): 393536 - 393216
SECTION_BYTES = 64  # allowance per extra section (alignment + checksum), an estimate

def bits_per_value(payload_bytes, n_sections, n_values=256 * D):
    return 8.0 * (payload_bytes + FRAME_BYTES + SECTION_BYTES * max(0, n_sections - 1)) / n_values
