#!/usr/bin/env python3
"""Generates the small PyTorch reference fixtures in test/fixtures/torch/ (committed).

Run with Debian's python3-torch (1.13): /usr/bin/python3 scripts/make_fixtures.py
Everything is seeded, so a rerun reproduces the same files.
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'torch')
os.makedirs(OUT, exist_ok=True)


def save(name, array):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(array, dtype=np.float32))


def randomise_batchnorm(model, mean=0.3, var=(0.5, 1.5)):
    """Non-trivial BatchNorm statistics (running mean in +-mean, variance in var), so folding them matters."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-mean, mean)
            m.running_var.uniform_(*var)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


# 1. Resampling: F.interpolate bicubic / bilinear, align_corners=False, up and down.
torch.manual_seed(0)
x = torch.randn(1, 2, 9, 11)
save('resize.input.npy', x.numpy())
resize_cases = []
for mode in ['bicubic', 'bilinear']:
    for (h, w) in [(23, 17), (5, 4), (9, 11), (40, 33)]:
        y = F.interpolate(x, (h, w), mode=mode, align_corners=False)
        name = f'resize.{mode}.{h}x{w}.npy'
        save(name, y.numpy())
        resize_cases.append({'mode': mode, 'size': [h, w], 'output': name})


# 2. A small CNN that uses most of the ops our gradient rules cover (opset 14: HardSwish is an op), to
#    compare whole-model input and layer gradients with autograd. The exporter folds BatchNormalization
#    into the convolutions; its rule is checked against finite differences instead.
class SqueezeExcite(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 2, 1)
        self.fc2 = nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.pool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.block = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8),  # depthwise, dilated
            nn.BatchNorm2d(8),
            nn.Hardswish(),
            nn.Conv2d(8, 16, 1),
            nn.LeakyReLU(0.1),
        )
        self.se = SqueezeExcite(16)
        self.branch = nn.Conv2d(16, 8, 3, padding=1)
        self.avg = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.up = nn.ConvTranspose2d(24, 12, 2, stride=2)
        self.head = nn.Linear(12, 7)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = self.block(x)
        x = self.se(x)
        x = torch.cat([x, torch.tanh(self.branch(x))], dim=1)
        x = F.pad(x, (1, 0, 0, 1), mode='reflect')
        x = self.avg(x)
        x = torch.sigmoid(self.up(x)) * 2.0 - torch.tanh(x).mean() / 4.0  # ConvTranspose, Sub, Div
        x = x.mean(dim=(2, 3))
        return self.head(x)


torch.manual_seed(1)
zoo = Zoo().eval()
randomise_batchnorm(zoo, mean=0.5, var=(0.5, 2.0))
zoo_path = os.path.join(OUT, 'zoo.onnx')
torch.onnx.export(
    zoo, torch.randn(1, 3, 33, 33), zoo_path, input_names=['input'], output_names=['logits'],
    dynamic_axes={'input': {2: 'height', 3: 'width'}}, opset_version=14, do_constant_folding=False,
    training=torch.onnx.TrainingMode.EVAL,
)
zoo_cases = []
captured = {}


def capture(name):
    def hook(module, inputs, output):
        captured[name] = output
        output.retain_grad()
    return hook


for name in ['block', 'se']:
    zoo.get_submodule(name).register_forward_hook(capture(name))
for size, cls in [(33, 2), (48, 5)]:
    torch.manual_seed(size)
    inp = torch.randn(1, 3, size, size, requires_grad=True)
    logits = zoo(inp)
    logits[0, cls].backward()
    base = f'zoo.{size}'
    save(f'{base}.input.npy', inp.detach().numpy())
    save(f'{base}.logits.npy', logits.detach().numpy())
    save(f'{base}.grad.input.npy', inp.grad.numpy())
    for name in ['block', 'se']:
        save(f'{base}.act.{name}.npy', captured[name].detach().numpy())
        save(f'{base}.grad.{name}.npy', captured[name].grad.numpy())
    # Targets beyond one logit: the class's softmax probability, and the contrast logit_cls - logit_other.
    other = (cls + 3) % 7
    # 'logprob' is minus the cross-entropy toward cls: what the saliency-guided attack follows.
    for target, score in [('prob', lambda z: torch.softmax(z, dim=1)[0, cls]), ('contrast', lambda z: z[0, cls] - z[0, other]),
                          ('logprob', lambda z: -F.cross_entropy(z, torch.tensor([cls])))]:
        x = inp.detach().clone().requires_grad_(True)
        score(zoo(x)).backward()
        save(f'{base}.{target}.grad.input.npy', x.grad.numpy())
        for name in ['block', 'se']:
            save(f'{base}.{target}.grad.{name}.npy', captured[name].grad.numpy())
    zoo_cases.append({'size': size, 'class': cls, 'other': other, 'prefix': base, 'layers': ['block', 'se']})


# 2b. Insertion and deletion as RISE's evaluation.py computes them (CausalMetric.single_run, its gkern and auc,
#     ported with HW the image's own area), on the zoo model and a seeded saliency map without ties.
from rise_reference import causal_scores as rise_scores  # noqa: E402  (beside this script)
from rise_reference import gkern as rise_gkern  # noqa: E402

softmax_zoo = nn.Sequential(zoo, nn.Softmax(dim=1))
rise_input = torch.from_numpy(np.load(os.path.join(OUT, 'zoo.48.input.npy')))
rng = np.random.RandomState(5)
rise_map = rng.rand(48, 48).astype('float32')
save('rise.48.map.npy', rise_map)
kern = rise_gkern(11, 5)
blur = lambda x: F.conv2d(x, kern, padding=11 // 2)
for mode, substrate in [('del', torch.zeros_like), ('ins', blur)]:
    cls, scores = rise_scores(softmax_zoo, rise_input.clone(), rise_map, mode, 10, substrate)
    save(f'rise.48.{mode}.scores.npy', scores)
save('rise.48.blurred.npy', blur(rise_input).detach().numpy())

# 3. An opset-11 export (Squeeze/Unsqueeze/ReduceSum with axes attributes, Clip with inputs, a 4-D
#    Softmax with the old flatten semantics) to test lifting to opset 16.
class Old(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = torch.clamp(self.conv(x), -1.0, 2.0)
        y = torch.softmax(y, dim=1) + y
        s = y.sum(dim=(2, 3), keepdim=True)
        v = s.squeeze(3).squeeze(2)
        v = v.unsqueeze(0).squeeze(0)
        return self.fc(v)


torch.manual_seed(2)
old = Old().eval()
torch.onnx.export(old, torch.randn(1, 3, 8, 8), os.path.join(OUT, 'old11.onnx'), input_names=['input'],
                  output_names=['logits'], opset_version=11)
oi = torch.randn(1, 3, 8, 8, requires_grad=True)
ol = old(oi)
ol[0, 1].backward()
save('old11.input.npy', oi.detach().numpy())
save('old11.logits.npy', ol.detach().numpy())
save('old11.grad.input.npy', oi.grad.numpy())


# 3b. Exports as most people write them: torch.onnx.export without dynamic_axes, so the input is fixed at
#     64 px. `fixed_gap` ends in global pooling (any size works once the input is freed); `fixed_view` flattens
#     with x.view(1, -1) into a Linear sized for 64 px (a Reshape that hard-codes the size). `dynamic_gap` is
#     the same network as `fixed_gap` exported with dynamic axes, for comparison.
class FixedGap(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class FixedView(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4, padding=1), nn.ReLU())
        self.fc = nn.Linear(4 * 16 * 16, 5)

    def forward(self, x):
        return self.fc(self.features(x).view(1, -1))


torch.manual_seed(11)
for name, net, dynamic in [('fixed_gap', FixedGap(), False), ('fixed_view', FixedView(), False)]:
    torch.onnx.export(net.eval(), torch.randn(1, 3, 64, 64), os.path.join(OUT, f'{name}.onnx'), input_names=['input'],
                      output_names=['logits'], opset_version=13)
torch.manual_seed(11)
torch.onnx.export(FixedGap().eval(), torch.randn(1, 3, 64, 64), os.path.join(OUT, 'dynamic_gap.onnx'), input_names=['input'],
                  output_names=['logits'], opset_version=13, dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}})

with open(os.path.join(OUT, 'cases.json'), 'w') as f:
    json.dump({'torch': torch.__version__, 'resize': resize_cases, 'zoo': zoo_cases}, f, indent=1)
print('wrote', OUT)


# 4. torchvision architectures at narrow widths (same code paths, small weights) for the builders:
#    state dicts as .safetensors and the logits at 224 and at 320 px (adaptive pooling at a size it does
#    not divide).
import struct
import torchvision


from safetensors_io import save_safetensors  # noqa: E402  (beside this script)


narrow = {
    'vgg16': lambda: torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers(
        [4, 4, 'M', 8, 8, 'M', 8, 8, 8, 'M', 16, 16, 16, 'M', 16, 16, 16, 'M']), num_classes=10, init_weights=True),
    'densenet121': lambda: torchvision.models.DenseNet(growth_rate=4, block_config=(6, 12, 24, 16), num_init_features=8, bn_size=2, num_classes=10),
}
torchvision_cases = []
for arch, make in narrow.items():
    torch.manual_seed(11)
    model = make().eval()
    if arch == 'vgg16':
        # Narrow classifier: the torchvision class hard-codes 4096 hidden units; keep its structure.
        model.classifier = nn.Sequential(nn.Linear(16 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 10))
        model.eval()
    randomise_batchnorm(model)
    save_safetensors(os.path.join(OUT, f'{arch}.safetensors'), model.state_dict())
    for size in [224, 320]:
        # An input both sides can compute (test/models.test.ts): sin(0.37 i) over NCHW, in float32.
        x = torch.sin(torch.arange(3 * size * size, dtype=torch.float64) * 0.37).float().reshape(1, 3, size, size)
        save(f'{arch}.{size}.logits.npy', model(x).detach().numpy())
    torchvision_cases.append(arch)

categories = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta['categories']
with open(os.path.join(os.path.dirname(__file__), '..', 'assets', 'labels', 'imagenet.json'), 'w') as f:
    json.dump(categories, f)

with open(os.path.join(OUT, 'cases.json'), 'w') as f:
    json.dump({'torch': torch.__version__, 'resize': resize_cases, 'zoo': zoo_cases, 'torchvision': torchvision_cases}, f, indent=1)
print('wrote torchvision fixtures')
