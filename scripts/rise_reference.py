"""RISE's blur kernel (its evaluation.py `gkern`): scipy's reflected Gaussian of a delta, one per channel."""
import numpy as np
import torch
from scipy.ndimage import gaussian_filter


def gkern(klen, nsig):
    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    k = gaussian_filter(inp, nsig)
    kern = np.zeros((3, 3, klen, klen))
    for c in range(3):
        kern[c, c] = k
    return torch.from_numpy(kern.astype('float32'))
