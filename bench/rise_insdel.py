#!/usr/bin/env python3
"""Insertion and deletion of one image the way RISE's evaluation.py runs them (CausalMetric.single_run: one
forward pass per step, softmax, the class the model's top-1, zero substrate for deletion, gkern(11, 5) blur for
insertion, 224 px steps at 224 px): the Python reference's cost, for the benchmark. Written after RISE's code.

  python3 rise_insdel.py <resnet50> <input.npy> <saliency.npy>   -> one JSON line
"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'scripts'))
from rise_reference import gkern  # noqa: E402

arch, input_path, map_path = sys.argv[1:4]
torch.set_num_threads(2)
torch.manual_seed(0)
model = nn.Sequential(getattr(torchvision.models, arch)(), nn.Softmax(dim=1)).eval()
image = torch.from_numpy(np.load(input_path))
saliency = np.load(map_path).astype('float32')


kern = gkern(11, 5)


def run(mode):
    hw = image.shape[2] * image.shape[3]
    step = image.shape[2]
    n_steps = (hw + step - 1) // step
    with torch.no_grad():
        c = int(torch.argmax(model(image), 1)[0])
        if mode == 'del':
            start, finish = image.clone(), torch.zeros_like(image)
        else:
            start, finish = F.conv2d(image, kern, padding=5), image.clone()
        scores = np.empty(n_steps + 1)
        order = np.flip(np.argsort(saliency.reshape(-1, hw), axis=1), axis=-1)
        for i in range(n_steps + 1):
            scores[i] = float(model(start)[0, c])
            if i < n_steps:
                coords = order[:, step * i:step * (i + 1)]
                start.numpy().reshape(1, 3, hw)[0, :, coords] = finish.numpy().reshape(1, 3, hw)[0, :, coords]
    return (scores.sum() - scores[0] / 2 - scores[-1] / 2) / (scores.shape[0] - 1)


with torch.no_grad():
    model(image)  # warm
started = time.perf_counter()
deletion, insertion = run('del'), run('ins')
seconds = time.perf_counter() - started
print(json.dumps({'task': 'rise', 'times': [seconds], 'deletion': deletion, 'insertion': insertion,
                  'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'torch': torch.__version__}))
