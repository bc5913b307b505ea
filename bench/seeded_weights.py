#!/usr/bin/env python3
"""torchvision's architectures with seeded random weights as .safetensors, for the per-architecture benchmark
(no ImageNet weights exist offline): python3 seeded_weights.py <arch> <out.safetensors>"""
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'scripts'))
from safetensors_io import save_safetensors  # noqa: E402

arch, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
options = {'aux_logits': True, 'init_weights': False} if arch == 'inception_v3' else {}
model = getattr(torchvision.models, arch)(**options).eval()
save_safetensors(out, model.state_dict())
