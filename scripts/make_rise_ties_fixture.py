#!/usr/bin/env python3
"""RISE's insertion and deletion on saliency maps with ties (test/fixtures/rise-ties/, committed).

Run with Debian's python3-torch: /usr/bin/python3 scripts/make_rise_ties_fixture.py
RISE orders pixels by numpy's default argsort, flipped; on ties (a CAM grid upsampled by nearest neighbours, a map
quantised to 8 bits) that order is numpy's quicksort's, not a stable one. The model is a seeded linear classifier,
so the test recomputes its logits exactly; numpy's order is saved beside each curve.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from rise_reference import causal_scores, gkern

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'rise-ties')
os.makedirs(OUT, exist_ok=True)
SIZE, CLASSES, STEP = 48, 5, 10

torch.manual_seed(3)
linear = torch.nn.Linear(3 * SIZE * SIZE, CLASSES)
model = torch.nn.Sequential(torch.nn.Flatten(), linear, torch.nn.Softmax(dim=1)).eval()
rng = np.random.RandomState(7)
image = torch.from_numpy(rng.randn(1, 3, SIZE, SIZE).astype('float32'))
np.save(os.path.join(OUT, 'weight.npy'), linear.weight.detach().numpy())
np.save(os.path.join(OUT, 'bias.npy'), linear.bias.detach().numpy())
np.save(os.path.join(OUT, 'input.npy'), image.numpy())

maps = {
    # A 6 x 6 CAM grid upsampled 8x by nearest neighbours: 36 values, each 64 times.
    'grid': np.kron(rng.rand(6, 6), np.ones((8, 8))).astype('float32'),
    # A map quantised to 8 bits, as a PNG holds it: 256 levels over 2304 pixels.
    'bytes': (np.round(rng.rand(SIZE, SIZE) * 255) / 255).astype('float32'),
    # No ties, for the equality that holds.
    'random': rng.rand(SIZE, SIZE).astype('float32'),
}
kern = gkern(11, 5)
blur = lambda x: F.conv2d(x, kern, padding=11 // 2)
cases = []
with torch.no_grad():
    for name, saliency in maps.items():
        np.save(os.path.join(OUT, f'{name}.map.npy'), saliency)
        np.save(os.path.join(OUT, f'{name}.order.npy'),
                np.flip(np.argsort(saliency.reshape(-1, SIZE * SIZE), axis=1), axis=-1)[0].astype('float32'))  # indices, exact in float32
        for mode, substrate in [('del', torch.zeros_like), ('ins', blur)]:
            cls, scores = causal_scores(model, image.clone(), saliency, mode, STEP, substrate)
            np.save(os.path.join(OUT, f'{name}.{mode}.scores.npy'), scores.astype('float32'))
            cases.append({'map': name, 'mode': mode, 'class': cls})
with open(os.path.join(OUT, 'cases.json'), 'w') as f:
    json.dump({'torch': torch.__version__, 'numpy': np.__version__, 'step': STEP, 'cases': cases}, f, indent=1)
print('wrote', OUT)
