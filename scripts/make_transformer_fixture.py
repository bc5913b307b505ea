#!/usr/bin/env python3
"""Small Vision Transformers exported to ONNX, and their references (test/fixtures/transformers/, committed).

Run with Debian's python3-torch 1.13 / python3-torchvision 0.14 and python3-opencv, given checkouts of pytorch-grad-cam
(github.com/jacobgil/pytorch-grad-cam) and vit-explain (github.com/jacobgil/vit-explain), whose code runs unmodified
(the modules pytorch-grad-cam imports only for test-time augmentation and KPCA/NMF, ttach and sklearn, are stubbed:
they are never called here); a checkout may be an exported tree with its commit in a COMMIT file:

    /usr/bin/python3 scripts/make_transformer_fixture.py <pytorch-grad-cam checkout> <vit-explain checkout>

Models (seeded, random: no pretrained weights exist offline), the same operators as the full-size ones:
- `vit.onnx`: torchvision's VisionTransformer, patch 16, 2 blocks of width 64 at 224 px. Exported outside
  `torch.no_grad()` (its fused attention does not export); the classification head, which torchvision zero-initialises,
  is drawn, or every gradient would be zero.
- `swin.onnx`: torchvision's SwinTransformer, patch 4, two stages of two blocks (window 7), right at every size.
- `swin_baked.onnx`: four stages, the last 7 x 7 at 224 px: the exporter bakes in that its blocks do not shift their
  windows (torchvision decides that in Python from the feature size), so at 320 px it computes another function.

Inputs: test/fixtures/mini_resnet's cat_dog and dog tensors (the authors' preprocessing at 224 px).
References: each model's logits at 224 and 320 px (the 224 input resized as CAMERAS does); pytorch-grad-cam's maps
at the default layers with its reshape transforms; the CAMERAS authors' algorithm (steps in shared/fixtures/README.md)
in float64 and float32, where the ViT at each scale is torchvision's VisionTransformer at that image size with its
position embedding resampled by torchvision's own `interpolate_embeddings` (bicubic, align_corners=True).
"""
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.vision_transformer import VisionTransformer, interpolate_embeddings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_grad_cam_checkout import use_checkout  # noqa: E402

PGC = os.path.abspath(sys.argv[1])
VIT_EXPLAIN = os.path.abspath(sys.argv[2])
use_checkout(PGC)
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'transformers')
os.makedirs(OUT, exist_ok=True)
INPUTS = ['cat_dog', 'dog']
RESOLUTIONS = [224, 320, 416, 512]
VIT = dict(patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10)
SWIN = dict(patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 4], window_size=[7, 7], num_classes=10)
SWIN_BAKED = dict(patch_size=[4, 4], embed_dim=8, depths=[1, 1, 1, 2], num_heads=[1, 1, 2, 2], window_size=[7, 7],
                  num_classes=10)
METHODS = {'gradcam': GradCAM, 'gradcampp': GradCAMPlusPlus, 'hirescam': HiResCAM, 'xgradcam': XGradCAM,
           'layercam': LayerCAM, 'scorecam': ScoreCAM, 'eigencam': EigenCAM}


def save(name, array):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(array, dtype=np.float32))


def draw(model, seed):
    """Norms and the head drawn away from their initial values, so their gradients are exercised and not zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
        head = model.heads.head if hasattr(model, 'heads') else model.head
        head.weight.copy_(0.3 * torch.randn(head.weight.shape, generator=generator))
        head.bias.copy_(0.1 * torch.randn(head.bias.shape, generator=generator))
        if hasattr(model, 'class_token'):
            model.class_token.copy_(0.02 * torch.randn(model.class_token.shape, generator=generator))
    return model.eval()


def export(model, name):
    # Outside torch.no_grad(): torchvision's attention takes a fused fast path under no_grad that does not export.
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), os.path.join(OUT, name), input_names=['input'],
                      output_names=['logits'], opset_version=17,
                      dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}, 'logits': {0: 'batch'}})


def resized(x, size):
    return x if size == x.shape[-1] else F.interpolate(x, size=(size, size), mode='bicubic', align_corners=False)


torch.manual_seed(0)
vit = draw(VisionTransformer(image_size=224, **VIT), 10)
torch.manual_seed(1)
swin = draw(SwinTransformer(**SWIN), 11)
torch.manual_seed(2)
swin_baked = draw(SwinTransformer(**SWIN_BAKED), 12)
for model, name in [(vit, 'vit.onnx'), (swin, 'swin.onnx'), (swin_baked, 'swin_baked.onnx')]:
    export(model, name)

inputs = {name: torch.from_numpy(np.load(os.path.join(ROOT, 'test', 'fixtures', 'mini_resnet', f'{name}.input.npy')))
          for name in INPUTS}


def vit_at(size, dtype=torch.float32):
    """torchvision's ViT at another image size: the position embedding resampled by interpolate_embeddings."""
    if size == 224:
        return vit.to(dtype)
    state = interpolate_embeddings(size, VIT['patch_size'], vit.state_dict())
    model = VisionTransformer(image_size=size, **VIT).eval()
    model.load_state_dict(state)
    return model.to(dtype)


def vit_tokens(tensor):
    """pytorch-grad-cam's vit_reshape_transform on any grid: class token dropped, [N, C, h, w]."""
    side = int(round((tensor.shape[1] - 1) ** 0.5))
    return tensor[:, 1:, :].reshape(tensor.shape[0], side, side, tensor.shape[2]).permute(0, 3, 1, 2)


def channels_last(tensor):
    """torchvision's Swin blocks are [N, H, W, C]."""
    return tensor.permute(0, 3, 1, 2)


MODELS = {
    'vit': dict(at=vit_at, layer='encoder.layers.encoder_layer_1.ln_1', module=lambda m: m.encoder.layers[-1].ln_1,
                reshape=vit_tokens, model=vit),
    'swin': dict(at=lambda size, dtype=torch.float32: swin.to(dtype), layer='features.3.1.norm1',
                 module=lambda m: m.features[-1][-1].norm1, reshape=channels_last, model=swin),
}

# Logits at two sizes: the export must compute what PyTorch does at a size it was not traced at.
logits = {}
for name, model in [('vit', vit_at), ('swin', MODELS['swin']['at']), ('swin_baked', lambda size: swin_baked)]:
    for size in [224, 320]:
        with torch.no_grad():
            value = model(size)(resized(inputs['cat_dog'], size))
        save(f'{name}.cat_dog.{size}.logits.npy', value.numpy())
        logits[f'{name}.{size}'] = f'{name}.cat_dog.{size}.logits.npy'

# pytorch-grad-cam's maps: default arguments, ReLU'd and min-max scaled (scale_cam_image) at the layer's grid; run on
# the model in float32, as its users run it, and in float64, the exact map both are judged against.
baselines = []
for model_name, spec in MODELS.items():
    for input_name in INPUTS:
        with torch.no_grad():
            top = int(spec['model'].float()(inputs[input_name]).argmax())
        for cls in [top, 3]:
            for method, Method in METHODS.items():
                maps = {}
                for dtype, suffix in [(torch.float32, ''), (torch.float64, '.float64')]:
                    model = spec['model'].to(dtype)
                    cam = Method(model=model, target_layers=[spec['module'](model)], reshape_transform=spec['reshape'])
                    # Kept at the layer's grid (no cv2.resize to 224 px, which the CNN baselines cover): small files.
                    cam.get_target_width_height = lambda _input: None
                    grayscale = cam(input_tensor=inputs[input_name].to(dtype), targets=[ClassifierOutputTarget(cls)])[0]
                    maps[dtype] = name = f'{model_name}.{input_name}.{method}.c{cls}{suffix}.npy'
                    save(name, grayscale)
                baselines.append({'model': model_name, 'input': f'{input_name}.input.npy', 'layer': spec['layer'],
                                  'class': cls, 'method': method, 'map': maps[torch.float32],
                                  'float64': maps[torch.float64]})
    spec['model'].float()


def cameras(spec, x, resolutions, cls, dtype):
    """The CAMERAS authors' algorithm: accumulate activations and gradients over scales, fuse, normalise."""
    size = resolutions[0]
    x = x.to(dtype)
    sum_a = sum_g = None
    first = None
    classes, probs = {}, {}
    kept = 0
    for r in resolutions:
        net = spec['at'](r, dtype)
        store = {}

        def hook(_module, _inputs, output):
            output.retain_grad()
            store['a'] = output

        handle = spec['module'](net).register_forward_hook(hook)
        out = net(resized(x, r).detach())
        handle.remove()
        top = int(out.argmax())
        chosen = top if cls is None else cls
        classes[str(r)] = chosen
        probs[str(r)] = float(F.softmax(out.double(), dim=1)[0, top])
        if first is None:
            first = chosen
        net.zero_grad()
        out[0, chosen].backward()
        if chosen != first and chosen != cls:
            continue  # the class-consistency rule: a scale whose top-1 differs from the first scale's is dropped
        kept += 1
        a = spec['reshape'](store['a'].detach())
        g = spec['reshape'](store['a'].grad.detach())
        up = lambda t: F.interpolate(t, size=(size, size), mode='bilinear', align_corners=False)
        sum_a = up(a) if sum_a is None else sum_a + up(a)
        sum_g = up(g) if sum_g is None else sum_g + up(g)
    fused = F.relu(((sum_a / kept) * (sum_g / kept)).sum(1))[0]
    span = fused.max() - fused.min()
    return ((fused - fused.min()) / span).detach().numpy(), classes, probs


cases = []
for model_name, spec in MODELS.items():
    for input_name, cls in [('cat_dog', None), ('cat_dog', 3), ('dog', None)]:
        case = f'{model_name}.{input_name}.cameras.{"top" if cls is None else f"c{cls}"}'
        exact, classes, probs = cameras(spec, inputs[input_name], RESOLUTIONS, cls, torch.float64)
        single, classes32, _ = cameras(spec, inputs[input_name], RESOLUTIONS, cls, torch.float32)
        assert classes == classes32, (case, classes, classes32)
        save(f'{case}.npy', exact)
        save(f'{case}.float32.npy', single)
        cases.append({'name': case, 'model': model_name, 'input': f'{input_name}.input.npy', 'class': cls,
                      'resolutions': RESOLUTIONS, 'layer': spec['layer'], 'classPerResolution': classes,
                      'probPerResolution': probs, 'map': f'{case}.npy', 'float32': f'{case}.float32.npy'})
    vit.float()
    swin.float()



# Attention rollout (jacobgil/vit-explain's `rollout`, run unmodified) and Chefer et al.'s generic attention
# explainability (Transformer-MM-Explainability's ViT notebook: avg_heads, apply_self_attention_rules,
# generate_relevance, the same steps on CPU) need each block's attention probabilities [1, heads, T, T] and, for
# Chefer's, their gradients. torchvision's attention does not return them per head, so each block's attention is
# replaced by the same computation written out (q scaled by 1/sqrt(d) before q k^T, as torch's does) that records them.
spec_rollout = importlib.util.spec_from_file_location('vit_rollout', os.path.join(VIT_EXPLAIN, 'vit_rollout.py'))
vit_rollout = importlib.util.module_from_spec(spec_rollout)
spec_rollout.loader.exec_module(vit_rollout)


def recording_attention(mha, store):
    def forward(query, key, value, need_weights=False, **_kwargs):
        n, t, e = query.shape
        heads = mha.num_heads
        d = e // heads
        q, k, v = F.linear(query, mha.in_proj_weight, mha.in_proj_bias).split(e, dim=-1)
        q, k, v = [z.reshape(n, t, heads, d).transpose(1, 2) for z in (q, k, v)]
        attention = torch.softmax((q / math.sqrt(d)) @ k.transpose(-2, -1), dim=-1)
        if attention.requires_grad:
            attention.retain_grad()
        store.append(attention)
        out = (attention @ v).transpose(1, 2).reshape(n, t, e)
        return F.linear(out, mha.out_proj.weight, mha.out_proj.bias), None
    return forward


def attention_pass(x, cls, dtype):
    """The ViT's attention maps on x, and (with a class) their gradients of that class's logit."""
    model = vit.to(dtype)
    store = []
    originals = [layer.self_attention.forward for layer in model.encoder.layers]
    for layer in model.encoder.layers:
        layer.self_attention.forward = recording_attention(layer.self_attention, store)
    try:
        out = model(x.to(dtype))
        chosen = int(out.argmax()) if cls is None else cls
        model.zero_grad()
        out[0, chosen].backward()
    finally:
        for layer, forward in zip(model.encoder.layers, originals):
            layer.self_attention.forward = forward
    return [a.detach() for a in store], [a.grad.detach() for a in store], chosen


def chefer(attentions, gradients):
    """generate_relevance's loop: R = I; per block R += avg_heads(cam, grad) @ R; the class token's row, less itself."""
    def avg_heads(cam, grad):
        cam = cam.reshape(-1, cam.shape[-2], cam.shape[-1])
        grad = grad.reshape(-1, grad.shape[-2], grad.shape[-1])
        return (grad * cam).clamp(min=0).mean(dim=0)
    tokens = attentions[0].shape[-1]
    relevance = torch.eye(tokens, tokens, dtype=attentions[0].dtype)
    for cam, grad in zip(attentions, gradients):
        relevance += torch.matmul(avg_heads(cam, grad), relevance)
    return relevance[0, 1:]


attention_cases = []
for input_name, cls, method, options in [('cat_dog', None, 'rollout', {'headFusion': 'max', 'discardRatio': 0.9}),
                                         ('cat_dog', None, 'rollout', {'headFusion': 'mean', 'discardRatio': 0.0}),
                                         ('dog', None, 'rollout', {'headFusion': 'min', 'discardRatio': 0.5}),
                                         ('cat_dog', None, 'chefer', {}), ('cat_dog', 3, 'chefer', {}),
                                         ('dog', None, 'chefer', {})]:
    maps = {}
    for dtype, suffix in [(torch.float32, ''), (torch.float64, '.float64')]:
        attentions, gradients, chosen = attention_pass(inputs[input_name], cls, dtype)
        if method == 'rollout':
            # Its torch.eye takes the default dtype: the run's, for the float64 reference.
            torch.set_default_dtype(dtype)
            grid = vit_rollout.rollout([a.clone() for a in attentions], options['discardRatio'], options['headFusion'])
            torch.set_default_dtype(torch.float32)
        else:
            relevance = chefer(attentions, gradients)
            grid = relevance.reshape(14, 14).numpy()
        tag = '.'.join(f'{v}' for v in options.values())
        maps[dtype] = name = f'vit.{input_name}.{method}{"." + tag if tag else ""}.c{chosen}{suffix}.npy'
        save(name, grid)
    attention_cases.append({'input': f'{input_name}.input.npy', 'class': chosen, 'method': method, 'options': options,
                            'map': maps[torch.float32], 'float64': maps[torch.float64]})
vit.float()


def commit_of(folder):
    """A checkout's commit, or the one named in its COMMIT file (an exported tree has no .git)."""
    named = os.path.join(folder, 'COMMIT')
    if os.path.exists(named):
        return open(named).read().strip()
    return subprocess.run(['git', '-C', folder, 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip()


with open(os.path.join(OUT, 'cases.json'), 'w') as f:
    json.dump({'torch': torch.__version__, 'inputs': '../mini_resnet', 'pytorchGradCam': commit_of(PGC),
               'vitExplain': commit_of(VIT_EXPLAIN), 'attention': attention_cases, 'vit': VIT, 'swin': SWIN, 'swinBaked': SWIN_BAKED,
               'logits': logits, 'baselines': baselines, 'cases': cases}, f, indent=1)
print('wrote', OUT, len(baselines), 'baseline maps,', len(cases), 'CAMERAS cases')
