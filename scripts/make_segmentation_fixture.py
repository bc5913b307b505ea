#!/usr/bin/env python3
"""A small segmenter with a dense output and its reference maps (test/fixtures/segmentation/, committed).

Run with Debian's python3-torch (1.13): /usr/bin/python3 scripts/make_segmentation_fixture.py
The model is seeded and random (no trained segmenter exists offline here); the references are computed in float64
by autograd, as pytorch-grad-cam computes Grad-CAM with its SemanticSegmentationTarget ((output[k] * mask).sum())
and as the CAMERAS authors' algorithm runs when the class logit is replaced by that region score.
"""
import copy
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'segmentation')
os.makedirs(OUT, exist_ok=True)
K = 4
SIZE = 96


def save(name, array):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(array, dtype=np.float32))


class TinySeg(nn.Module):
    """A backbone of stride 4 and two heads on it, as torchvision's FCN has `out` and `aux` (without the upsampling)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.classifier = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, K, 1))
        self.aux = nn.Conv2d(16, K, 1)

    def forward(self, x):
        features = self.backbone(x)
        return self.classifier(features), self.aux(features)


torch.manual_seed(0)
model = TinySeg().eval()
for m in model.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.3, 0.3)
        m.running_var.uniform_(0.5, 1.5)
# Heads without biases, so the pixels' features, not a constant, decide their class: several regions.
for head in [model.classifier[2], model.aux]:
    head.bias.data.zero_()
    head.weight.data *= 4
torch.onnx.export(model, torch.randn(1, 3, SIZE, SIZE), os.path.join(OUT, 'tiny_seg.onnx'), input_names=['input'],
                  output_names=['out', 'aux'], opset_version=13,
                  dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}, 'out': {0: 'batch', 2: 'h', 3: 'w'},
                                'aux': {0: 'batch', 2: 'h', 3: 'w'}})

# A smooth input with structure, so the predicted regions are blobs rather than noise.
i = torch.arange(SIZE, dtype=torch.float64)
planes = [torch.sin(0.11 * i[:, None] + c) * torch.cos(0.07 * i[None, :] - 2 * c) + 0.5 * torch.sin(0.05 * (i[:, None] + i[None, :]) * (c + 1))
          for c in range(3)]
x32 = torch.stack(planes)[None].float()
save('input.npy', x32.numpy())
x = x32.double()
double = copy.deepcopy(model).double()

# A given mask at the image's size (rows 20-69, columns 10-59), resized to each output as PyTorch's default nearest.
image_mask = torch.zeros(SIZE, SIZE, dtype=torch.float64)
image_mask[20:70, 10:60] = 1


def region_pass(inp, k, head, given, net=None):
    net = net or double
    features = net.backbone(inp)
    features.retain_grad()
    out = net.classifier(features) if head == 'out' else net.aux(features)
    if given:
        mask = F.interpolate(image_mask[None, None].to(out.dtype), size=out.shape[2:], mode='nearest')[0, 0]
    else:
        mask = (out.argmax(dim=1)[0] == k).to(out.dtype)
    score = (out[0, k] * mask).sum()
    score.backward()
    return features.detach()[0], features.grad.detach()[0], int(mask.sum())


def gradcam_raw(inp, k, head, given):
    a, g, area = region_pass(inp, k, head, given)
    weights = g.mean(dim=(1, 2))
    return (weights[:, None, None] * a).sum(0), area


def cameras_map(resolutions, k, head, given, net=None, base=None):
    base = x if base is None else base
    size = resolutions[0]
    sum_a = sum_g = None
    for r in resolutions:
        inp = base if r == SIZE else F.interpolate(base, size=(r, r), mode='bicubic', align_corners=False)
        a, g, _ = region_pass(inp.clone().requires_grad_(False), k, head, given, net)
        up = lambda t: F.interpolate(t[None], size=(size, size), mode='bilinear', align_corners=False)[0]
        sum_a = up(a) if sum_a is None else sum_a + up(a)
        sum_g = up(g) if sum_g is None else sum_g + up(g)
    n = len(resolutions)
    fused = F.relu(((sum_a / n) * (sum_g / n)).sum(0))
    return (fused - fused.min()) / (fused.max() - fused.min())


with torch.no_grad():
    out, aux = double(x)
counts = [int((out.argmax(1)[0] == c).sum()) for c in range(K)]
RESOLUTIONS = [SIZE, 160, 224]
# The class predicted on the fewest pixels that is predicted somewhere at every CAMERAS scale: a region, not the image.
with torch.no_grad():
    present = [all(int((double(x if r == SIZE else F.interpolate(x, size=(r, r), mode='bicubic', align_corners=False))[0].argmax(1) == c).sum()) > 0
                   for r in RESOLUTIONS) for c in range(K)]
k = min((c for c in range(K) if present[c]), key=lambda c: counts[c])
cases = []
for head, given in [('out', False), ('out', True), ('aux', False)]:
    raw, area = gradcam_raw(x.clone(), k, head, given)
    name = f'gradcam.{head}.{"mask" if given else "predicted"}.raw.npy'
    save(name, raw.numpy())
    cases.append({'method': 'gradcam', 'output': head, 'mask': given, 'raw': name, 'area': area})
single = copy.deepcopy(model).float()
for given in [False, True]:
    name = f'cameras.out.{"mask" if given else "predicted"}.npy'
    save(name, cameras_map(RESOLUTIONS, k, 'out', given).numpy())
    # The same algorithm in PyTorch float32, whose own distance from the exact map the test puts beside ours.
    save(f'float32.{name}', cameras_map(RESOLUTIONS, k, 'out', given, single, x32).detach().numpy())
    cases.append({'method': 'cameras', 'output': 'out', 'mask': given, 'resolutions': RESOLUTIONS, 'map': name, 'float32': f'float32.{name}'})

with open(os.path.join(OUT, 'cases.json'), 'w') as f:
    json.dump({'torch': torch.__version__, 'class': k, 'classes': K, 'pixelsPerClass': counts, 'layer': 'backbone',
               'mask': {'rows': [20, 70], 'columns': [10, 60], 'size': SIZE}, 'cases': cases}, f, indent=1)
print('wrote', OUT, 'class', k, 'pixels per class', counts)
