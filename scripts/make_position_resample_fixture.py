#!/usr/bin/env python3
"""A ViT's patch and position embedding alone, and its position embedding resampled as torchvision and as timm do
(test/fixtures/transformers/positions.*, committed), for the resampling conventions of issue 22.

- `positions.onnx`: patch embedding (Conv 16 x 16, stride 16, width 8), class token, learnt position embedding for a
  14 x 14 grid (224 px), exported with torch.onnx.export (opset 17, dynamic height and width) as torchvision's ViT
  writes these steps; its output is the token sequence plus the embedding.
- `positions.torchvision.<size>.npy`: the model's output for an all-zero <size> px input, float64, its embedding resampled to <size> px by torchvision's own
  `interpolate_embeddings` rule (bicubic, align_corners=True, class token kept).
- `positions.timm.<size>.npy`: the same, resampled as timm's `resample_abs_pos_embed` (F.interpolate bicubic, antialias=True,
  align_corners=False, prefix tokens kept).

Run with Debian's python3-torch 1.13: /usr/bin/python3 scripts/make_position_resample_fixture.py
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'transformers')
torch.manual_seed(7)


class Embedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, 8, 16, stride=16)
        self.class_token = nn.Parameter(torch.randn(1, 1, 8))
        self.pos_embedding = nn.Parameter(torch.randn(1, 1 + 14 * 14, 8))

    def forward(self, x):
        tokens = self.conv_proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding


model = Embedding().eval()
torch.onnx.export(model, torch.zeros(1, 3, 224, 224), os.path.join(OUT, 'positions.onnx'), input_names=['input'],
                  output_names=['tokens'], opset_version=17,
                  dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}, 'tokens': {0: 'batch', 1: 'tokens'}})
pos = model.pos_embedding.detach().double()
prefix, grid = pos[:, :1], pos[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
for size in [320, 512]:
    side = size // 16
    for name, resized in [('torchvision', F.interpolate(grid, size=(side, side), mode='bicubic', align_corners=True)),
                          ('timm', F.interpolate(grid, size=(side, side), mode='bicubic', align_corners=False, antialias=True))]:
        tokens = torch.cat([prefix, resized.permute(0, 2, 3, 1).reshape(1, side * side, 8)], dim=1)
        # What the model outputs for a black (all-zero) input: its class token and patch bias plus the embedding.
        base = torch.cat([model.class_token.detach().double(), model.conv_proj.bias.detach().double().expand(1, side * side, 8)], dim=1)
        tokens = tokens + base
        np.save(os.path.join(OUT, f'positions.{name}.{size}.npy'), tokens.numpy())
