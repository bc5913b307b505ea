#!/usr/bin/env python3
"""pytorch-grad-cam's Grad-CAM on torchvision's vit_b_16 (the bench's seeded weights), as its README explains a ViT:
the last block's first LayerNorm, tokens reshaped to 14 x 14 without the class token. Times `runs` runs after one
warm run and prints one JSON line: python3 gradcam_vit.py <pytorch-grad-cam checkout> <weights.pt> <input.npy> <runs>
(ttach and sklearn, which it imports only for test-time augmentation and KPCA/NMF, are stubbed where missing.)"""
import importlib
import importlib.util
import json
import resource
import sys
import time

import numpy as np
import torch
import torchvision
import types

for name, attrs in [('ttach', ['Compose', 'HorizontalFlip', 'Multiply']), ('sklearn', []), ('sklearn.decomposition', ['KernelPCA', 'NMF'])]:
    if importlib.util.find_spec(name.split('.')[0]) is None or name in ('ttach',) and not hasattr(importlib.import_module(name), 'HorizontalFlip'):
        module = types.ModuleType(name)
        for attr in attrs:
            setattr(module, attr, type(attr, (), {'__init__': lambda self, *args, **kwargs: None}))
        sys.modules[name] = module
sys.path.insert(0, sys.argv[1])
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

weights, input_path, runs = sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(2)
model = torchvision.models.vit_b_16().eval()
model.load_state_dict(torch.load(weights))
x = torch.from_numpy(np.load(input_path))


def reshape(tensor, height=14, width=14):
    return tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2)).permute(0, 3, 1, 2)


cam = GradCAM(model=model, target_layers=[model.encoder.layers[-1].ln_1], reshape_transform=reshape)
targets = [ClassifierOutputTarget(243)]
cam(input_tensor=x, targets=targets)
times = []
for _ in range(runs):
    start = time.perf_counter()
    cam(input_tensor=x, targets=targets)
    times.append(time.perf_counter() - start)
print(json.dumps({'times': times, 'maxRssMiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
