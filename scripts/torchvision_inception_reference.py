#!/usr/bin/env python3
"""torchvision Inception-v3 reference for the extended test (too large to commit: 100 MB of weights).

  /usr/bin/python3 scripts/torchvision_inception_reference.py <output folder>
writes inception_v3.safetensors (seeded random weights, random batch-norm statistics) and the logits at
299 and 399 px for the input sin(0.37 i), with transform_input=True as torchvision's ImageNet weights use.
"""
import os
import sys

import torch, torchvision, numpy as np, json, struct
import torch.nn as nn
out = sys.argv[1]
torch.manual_seed(4)
m = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True, transform_input=True).eval()
for mod in m.modules():
    if isinstance(mod, nn.BatchNorm2d):
        mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5); mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.uniform_(-0.1, 0.1)
sd = {k: v for k, v in m.state_dict().items() if not k.endswith('num_batches_tracked')}
header, blobs, off = {}, [], 0
for k, v in sd.items():
    b = v.contiguous().numpy().astype('<f4').tobytes(); header[k] = {'dtype': 'F32', 'shape': list(v.shape), 'data_offsets': [off, off + len(b)]}; off += len(b); blobs.append(b)
h = json.dumps(header).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
open(os.path.join(out, 'inception_v3.safetensors'), 'wb').write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
for size in [299, 399]:
    x = torch.sin(torch.arange(3*size*size, dtype=torch.float64)*0.37).float().reshape(1,3,size,size)
    np.save(os.path.join(out, f'inception_v3.{size}.logits.npy'), m(x).detach().numpy())
