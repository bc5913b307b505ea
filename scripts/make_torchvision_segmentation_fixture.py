#!/usr/bin/env python3
"""torchvision's segmenters with seeded weights, and pytorch-grad-cam's region maps on them (issue 23).

Run with Debian's python3-torch 1.13 / python3-torchvision 0.14 and python3-opencv, given a checkout of
pytorch-grad-cam (github.com/jacobgil/pytorch-grad-cam; an exported tree with its commit in a COMMIT file will do):

    /usr/bin/python3 scripts/make_torchvision_segmentation_fixture.py <models folder> [<pytorch-grad-cam checkout>]

Models: `fcn_resnet50` and `deeplabv3_mobilenet_v3_large` (21 classes, no auxiliary head), weights drawn with seed 0
and batch-norm statistics drawn too (no pretrained weights exist offline), exported to ONNX with their `out` output
(the dict's 'out', bilinear-upsampled to the input's size by the model) into <models folder>: 135 and 44 MB, so they
are not committed; the same seed makes the same files, which the extended suite does when they are missing (the
models only: without a pytorch-grad-cam checkout the references are not rewritten).

References (test/fixtures/segmentation/torchvision/, committed): for the dog input of test/fixtures/mini_resnet, the
two classes that most pixels are predicted as, and pytorch-grad-cam's Grad-CAM, Grad-CAM++, HiResCAM, XGradCAM and LayerCAM
with its `SemanticSegmentationTarget(class, predicted mask)`, at the layer its tutorial uses (`backbone.layer4`;
`backbone.16`, the last block, for the MobileNet), kept at the layer's grid; run in float32, as its users run it,
and in float64, the exact map both are judged against.
"""
import json
import os
import sys

import numpy as np
import torch
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large, fcn_resnet50

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'segmentation', 'torchvision')
MODELS = os.path.abspath(sys.argv[1])
PGC = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
INPUT = os.path.join(ROOT, 'test', 'fixtures', 'mini_resnet', 'dog.input.npy')
ARCHS = {
    'fcn_resnet50': (fcn_resnet50, 'backbone.layer4', lambda m: m.model.backbone.layer4),
    'deeplabv3_mobilenet_v3_large': (deeplabv3_mobilenet_v3_large, 'backbone.16', lambda m: m.model.backbone['16']),
}


class Out(torch.nn.Module):
    """The model's `out` tensor, as pytorch-grad-cam's tutorial wraps the dict."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)['out']


def build(name):
    torch.manual_seed(0)
    model = ARCHS[name][0](weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
    return Out(model).eval()


def export(name, model):
    os.makedirs(MODELS, exist_ok=True)
    path = os.path.join(MODELS, f'{name}.onnx')
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, input_names=['input'], output_names=['out'], opset_version=13,
                      dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}, 'out': {0: 'batch', 2: 'height', 3: 'width'}})
    print('wrote', path, flush=True)


def references(models):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from pytorch_grad_cam_checkout import use_checkout
    use_checkout(PGC)
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
    methods = {'gradcam': GradCAM, 'gradcampp': GradCAMPlusPlus, 'hirescam': HiResCAM, 'xgradcam': XGradCAM, 'layercam': LayerCAM}
    os.makedirs(OUT, exist_ok=True)
    x = torch.from_numpy(np.load(INPUT))
    cases = []
    commit = open(os.path.join(PGC, 'COMMIT')).read().strip() if os.path.exists(os.path.join(PGC, 'COMMIT')) else 'unknown'
    for name, model in models.items():
        with torch.no_grad():
            out = model.double()(x.double())[0]
        predicted = out.argmax(0)
        counts = torch.bincount(predicted.flatten(), minlength=21)
        # The two classes most pixels are predicted as: a large region and a smaller one.
        for k in [int(c) for c in counts.argsort(descending=True)[:2]]:
            mask = (predicted == k).double().numpy()
            print(name, 'classes predicted', {int(c): int(counts[c]) for c in counts.nonzero()}, 'explained', k, flush=True)
            for method, Method in methods.items():
                maps = {}
                for dtype, suffix in [(torch.float32, ''), (torch.float64, '.float64')]:
                    m = model.to(dtype)
                    cam = Method(model=m, target_layers=[ARCHS[name][2](m)])
                    cam.get_target_width_height = lambda _input: None
                    target = SemanticSegmentationTarget(k, mask.astype(np.float64 if dtype == torch.float64 else np.float32))
                    grayscale = cam(input_tensor=x.to(dtype), targets=[target])[0]
                    maps[dtype] = f'{name}.c{k}.{method}{suffix}.npy'
                    np.save(os.path.join(OUT, maps[dtype]), np.ascontiguousarray(grayscale, dtype=np.float32))
                cases.append({'model': name, 'layer': ARCHS[name][1], 'class': k, 'method': method, 'map': maps[torch.float32],
                              'float64': maps[torch.float64], 'max': float(np.abs(np.load(os.path.join(OUT, maps[torch.float64]))).max())})
        model.float()
    with open(os.path.join(OUT, 'cases.json'), 'w') as f:
        json.dump({'torch': torch.__version__, 'pytorch_grad_cam': commit, 'input': 'mini_resnet/dog.input.npy', 'cases': cases}, f,
                  indent=1)


def main():
    models = {name: build(name) for name in ARCHS}
    for name, model in models.items():
        export(name, model)
    if PGC:
        references(models)


if __name__ == '__main__':
    main()
