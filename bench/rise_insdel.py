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
from rise_reference import causal_scores, gkern  # noqa: E402

arch, input_path, map_path = sys.argv[1:4]
torch.set_num_threads(2)
torch.manual_seed(0)
model = nn.Sequential(getattr(torchvision.models, arch)(), nn.Softmax(dim=1)).eval()
image = torch.from_numpy(np.load(input_path))
saliency = np.load(map_path).astype('float32')


kern = gkern(11, 5)


def run(mode):
    substrate = torch.zeros_like if mode == 'del' else (lambda x: F.conv2d(x, kern, padding=5))
    with torch.no_grad():
        _, scores = causal_scores(model, image, saliency, mode, image.shape[2], substrate)
    return (scores.sum() - scores[0] / 2 - scores[-1] / 2) / (scores.shape[0] - 1)


with torch.no_grad():
    model(image)  # warm
started = time.perf_counter()
deletion, insertion = run('del'), run('ins')
seconds = time.perf_counter() - started
print(json.dumps({'task': 'rise', 'times': [seconds], 'deletion': deletion, 'insertion': insertion,
                  'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'torch': torch.__version__}))
