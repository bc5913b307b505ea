#!/usr/bin/env python3
"""CAMERAS the authors' way, for the benchmark's baseline: PyTorch, forward plus a full backward()
per scale with module hooks recording activations and gradients, then the fusion on full
C x 224 x 224 tensors. Written for this benchmark after the paper's algorithm; not the authors' file.

  python3 authors_cameras.py <torchvision arch> <input.npy> <runs> [layer, default layer4]   -> one JSON line
  python3 authors_cameras.py <torchvision arch> <input.npy> process <layer> <weights.safetensors>
      the whole process a user runs for one image, timed from outside: load the weights, one cold run
"""
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

arch, input_path = sys.argv[1], sys.argv[2]
whole_process = sys.argv[3] == 'process'
runs = 1 if whole_process else int(sys.argv[3])
layer_path = sys.argv[4] if len(sys.argv) > 4 else 'layer4'
torch.set_num_threads(2)
torch.manual_seed(0)
options = {'aux_logits': True, 'init_weights': False} if arch == 'inception_v3' else {}
if whole_process and arch.startswith('vgg'):
    options['init_weights'] = False  # as torchvision builds it for pretrained weights
model = getattr(torchvision.models, arch)(**options).eval()
if whole_process:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'scripts'))
    from safetensors_io import load_safetensors  # noqa: E402

    model.load_state_dict(load_safetensors(sys.argv[5]))
image = torch.from_numpy(np.load(input_path))
resolutions = list(range(image.shape[2], image.shape[2] + 776, 100))


def cameras(x, class_index):
    store = {}

    def keep(module, inputs, output):
        store['a'] = output.detach()
        output.register_hook(lambda g: store.__setitem__('g', g.detach()))

    handle = model.get_submodule(layer_path).register_forward_hook(keep)
    features, gradients = [], []
    for i, r in enumerate(resolutions):
        scaled = x if i == 0 else F.interpolate(x, (r, r), mode='bicubic', align_corners=False)
        logits = model(scaled)
        one_hot = torch.zeros_like(logits)
        one_hot[0, class_index] = 1
        model.zero_grad()
        logits.backward(gradient=one_hot)
        size = resolutions[0]
        features.append(F.interpolate(store['a'], (size, size), mode='bilinear', align_corners=False))
        gradients.append(F.interpolate(store['g'], (size, size), mode='bilinear', align_corners=False))
    handle.remove()
    a = torch.stack(features).mean(0)
    g = torch.stack(gradients).mean(0)
    saliency = F.relu((a * g).sum(1)).flatten()
    return (saliency - saliency.min()) / (saliency.max() - saliency.min())


if not whole_process:
    cameras(image, 243)  # warm
times = []
for _ in range(runs):
    start = time.perf_counter()
    cameras(image, 243)
    times.append(time.perf_counter() - start)
print(json.dumps({'task': 'authors', 'times': times, 'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'torch': torch.__version__}))
