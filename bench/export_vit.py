#!/usr/bin/env python3
"""torchvision's vit_b_16 with seeded random weights (no ImageNet weights exist offline), its zero-initialised head
drawn so gradients are not all zero, exported as torch.onnx.export writes it (opset 17, dynamic height and width,
outside torch.no_grad(): the fused attention it takes there does not export), with its state dict for the
pytorch-grad-cam timing (bench/gradcam_vit.py): python3 export_vit.py <out.onnx> <out.pt>"""
import sys

import torch
import torchvision

out, weights = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
model = torchvision.models.vit_b_16().eval()
with torch.no_grad():
    model.heads.head.weight.normal_(0, 0.02)
torch.save(model.state_dict(), weights)
torch.onnx.export(model, torch.zeros(1, 3, 224, 224), out, input_names=['input'], output_names=['logits'], opset_version=17,
                  dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}, 'logits': {0: 'batch'}})
