# compute and cache: eval split states, calibration split states
import time
from common import *
t=time.time()
m=load_model()
ev=split_state(m, eval_tokens()); np.save(STUDY+"/eval_states.npy", ev)
print("eval", ev.shape, time.time()-t)
ct=calib_tokens(256); np.save(STUDY+"/calib_tokens.npy", ct)
cs=split_state(m, ct); np.save(STUDY+"/calib_states.npy", cs)
print("calib", cs.shape, time.time()-t)
h=np.load(MODEL+"/hidden_split2.npy").astype(np.float32)
print("check vs fixture fp16 states: max abs", np.abs(h-ev[:16]).max())
