"""RISE's evaluation.py, ported: its blur kernel `gkern` and `CausalMetric.single_run` (HW the image's own area)."""
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


def causal_scores(model, img, explanation, mode, step, substrate_fn):
    """The model's top-1 class and its score after each step of `step` pixels, in order of decreasing saliency,
    deleted into (mode 'del') or inserted from (mode 'ins') the substrate: one forward pass per step, as RISE runs."""
    hw = img.shape[2] * img.shape[3]
    c = int(torch.argmax(model(img), 1)[0])
    n_steps = (hw + step - 1) // step
    start, finish = (img.clone(), substrate_fn(img).detach()) if mode == 'del' else (substrate_fn(img).detach(), img.clone())
    scores = np.empty(n_steps + 1)
    order = np.flip(np.argsort(explanation.reshape(-1, hw), axis=1), axis=-1)
    for i in range(n_steps + 1):
        scores[i] = float(model(start)[0, c])
        if i < n_steps:
            coords = order[:, step * i:step * (i + 1)]
            start.numpy().reshape(1, 3, hw)[0, :, coords] = finish.numpy().reshape(1, 3, hw)[0, :, coords]
    return c, scores
