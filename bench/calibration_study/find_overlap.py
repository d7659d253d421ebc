# find /usr/include files that contain long lines of the eval windows, to exclude them from calibration
import numpy as np, subprocess, os, collections
from common import MODEL, STUDY
w=np.fromfile(os.path.join(MODEL, 'windows.bin'),dtype=np.uint8).reshape(32,256)
hits=collections.Counter(); perwin=[]
for i in range(32):
    lines=[l.strip() for l in bytes(w[i]).split(b'\n')[1:-1]]
    lines=sorted([l for l in lines if len(l)>=30],key=len,reverse=True)[:3]
    fs=set()
    for s in lines:
        r=subprocess.run(['grep','-rlF','--',s.decode('latin1'),'/usr/include'],capture_output=True,text=True)
        fs|={os.path.realpath(f) for f in r.stdout.split()}
    perwin.append(len(fs)); hits.update(fs)
print(perwin); print(len(hits))
open(os.path.join(STUDY, 'exclude.txt'),'w').write('\n'.join(sorted(hits))+'\n')
