#!/usr/bin/env python3
"""A localisation benchmark whose ground truth is known by construction (issue: evaluation and sanity checks).

Fashion-MNIST items (Debian's dataset-fashion-mnist) are pasted, tinted and scaled 2-4x, at random places onto
random crops of the photos in ../shared/images, so each image's class and box are known. A small CNN is trained on
such composites (made from the training split) with Debian's PyTorch at the one scale of the benchmark, and exported
to assets/models/composite_fashion_single_scale.onnx (`composite:fashion-single-scale`; the zoo's `composite:fashion`
is the same CNN trained with random resized crops by scripts/train_composite_multiscale.py); 100 held-out
composites (made from the test split, on the same photos) are written to bench/composite/ as JPEGs with VOC
annotations, with the training log and the held-out accuracy. Seeded: a rerun makes the same images.

Run: /usr/bin/python3 scripts/make_composite_benchmark.py   (about 8 minutes on 2 cores)
"""
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
SHARED = os.path.join(ROOT, '..', 'shared', 'images')
FASHION = '/usr/share/datasets/fashion-mnist'
OUT = os.path.join(ROOT, 'bench', 'composite')
MODEL = os.path.join(ROOT, 'assets', 'models', 'composite_fashion_single_scale.onnx')
CLASSES = ['tshirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot']
SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def load_idx(kind):
    with gzip.open(os.path.join(FASHION, f'{kind}-images-idx3-ubyte.gz')) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(FASHION, f'{kind}-labels-idx1-ubyte.gz')) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


PHOTOS = [np.asarray(Image.open(os.path.join(SHARED, n)).convert('RGB'))
          for n in sorted(os.listdir(SHARED)) if n.lower().endswith(('.jpg', '.png'))]
BACKGROUNDS = PHOTOS


def paste(image, item, y0, x0, scaled, rng):
    """Pastes `item` scaled to `scaled` px at (y0, x0) of the float image, in place; returns its opacity."""
    shade = np.asarray(Image.fromarray(item).resize((scaled, scaled), Image.BILINEAR)).astype(np.float32) / 255
    # An opaque silhouette (the item's pixels above a low threshold) keeping the item's own shading inside.
    alpha = np.clip((shade - 0.04) * 12, 0, 1)
    patch = image[y0:y0 + scaled, x0:x0 + scaled]
    # A colour that stands out from what lies under the item: dark on light ground, light on dark.
    light = patch.mean() > 110
    tint = (rng.uniform(0.0, 0.35, 3) if light else rng.uniform(0.65, 1.0, 3)) * 255
    colour = tint * (0.45 + 0.55 * shade[..., None]) if not light else tint + (255 - tint) * 0.5 * shade[..., None]
    image[y0:y0 + scaled, x0:x0 + scaled] = patch * (1 - alpha[..., None]) + colour * alpha[..., None]
    return alpha


def composite(item, rng):
    """A 224 px composite with `item` pasted; returns the RGB image and the item's inclusive box (0-based)."""
    bg = BACKGROUNDS[rng.randint(len(BACKGROUNDS))]
    h, w = bg.shape[:2]
    side = int(rng.uniform(0.5, 1.0) * min(h, w))
    y, x = rng.randint(h - side + 1), rng.randint(w - side + 1)
    image = np.asarray(Image.fromarray(bg[y:y + side, x:x + side]).resize((SIZE, SIZE), Image.BILINEAR)).astype(np.float32)
    scaled = int(28 * rng.uniform(2.0, 4.0))
    y0, x0 = rng.randint(SIZE - scaled + 1), rng.randint(SIZE - scaled + 1)
    alpha = paste(image, item, y0, x0, scaled, rng)
    ys, xs = np.nonzero(alpha > 0.15)
    box = [int(x0 + xs.min()), int(y0 + ys.min()), int(x0 + xs.max()), int(y0 + ys.max())]
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), box


def tensor(images):
    x = (images.astype(np.float32) / 255 - MEAN) / STD
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        block = lambda i, o, s: [nn.Conv2d(i, o, 3, stride=s, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
        self.features = nn.Sequential(*block(3, 16, 2), *block(16, 32, 2), *block(32, 64, 2), *block(64, 96, 2), *block(96, 128, 1))
        self.fc = nn.Linear(128, len(CLASSES))

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def make(items, labels, rng):
    pairs = [composite(item, rng) for item in items]
    return np.stack([p[0] for p in pairs]), [p[1] for p in pairs], labels


def faded(fade):
    """The photos faded towards grey by 1 - fade: the curriculum starts on plain grounds and ends on the photos."""
    return [(b.astype(np.float32) * fade + 128 * (1 - fade)).astype(np.uint8) for b in PHOTOS]


def train_epoch(net, optimiser, x_train, y_train, rng, augment=None):
    """One pass over the composites in shuffled batches of 32, `augment(x, idx)` editing each batch's tensor;
    returns the mean loss and the training accuracy."""
    net.train()
    perm = rng.permutation(len(x_train))
    total, correct, loss_sum = 0, 0, 0.0
    for start in range(0, len(perm), 32):
        idx = perm[start:start + 32]
        x, y = tensor(x_train[idx]), torch.from_numpy(y_train[idx].astype(np.int64))
        if augment:
            x = augment(x, idx)
        out = net(x)
        loss = F.cross_entropy(out, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        loss_sum += float(loss) * len(idx)
        correct += int((out.argmax(1) == y).sum())
        total += len(idx)
    return loss_sum / total, correct / total


def held_out_accuracy(net, x_val, y_val):
    net.eval()
    with torch.no_grad():
        return sum(int((net(tensor(x_val[s:s + 100])).argmax(1) == torch.from_numpy(y_val[s:s + 100].astype(np.int64))).sum())
                   for s in range(0, len(x_val), 100)) / len(x_val)


def main():
    global BACKGROUNDS
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = np.random.RandomState(0)
    train_images, train_labels = load_idx('train')
    test_images, test_labels = load_idx('t10k')
    log = []
    started = time.time()
    held = rng.permutation(len(test_images))
    x_val, _, y_val = make(test_images[held[:1000]], test_labels[held[:1000]], rng)
    net = Net()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    # A curriculum: items on grey first (the net finds them), then on ever less faded photos.
    fades = [0.0, 0.35, 0.7] + [1.0] * 15
    for epoch, fade in enumerate(fades):
        if epoch == len(fades) - 4:
            for group in optimiser.param_groups:
                group['lr'] = 3e-4
        BACKGROUNDS = faded(fade)
        order = rng.randint(0, len(train_images), 4000)
        x_train, _, y_train = make(train_images[order], train_labels[order], rng)
        BACKGROUNDS = PHOTOS
        loss, accuracy = train_epoch(net, optimiser, x_train, y_train, rng)
        log.append({'epoch': epoch + 1, 'background_fade': fade, 'loss': loss, 'train_accuracy': accuracy,
                    'held_out_accuracy': held_out_accuracy(net, x_val, y_val), 'seconds': round(time.time() - started, 1)})
        print(log[-1], flush=True)
    net.eval()
    torch.onnx.export(net, torch.randn(1, 3, SIZE, SIZE), MODEL, input_names=['input'], output_names=['logits'], opset_version=13,
                      dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}, 'logits': {0: 'batch'}})
    os.makedirs(OUT, exist_ok=True)
    bench_images, bench_boxes, bench_labels = make(test_images[held[1000:1100]], test_labels[held[1000:1100]], rng)
    for i, (image, box, label) in enumerate(zip(bench_images, bench_boxes, bench_labels)):
        name = f'composite_{i:03d}'
        Image.fromarray(image).save(os.path.join(OUT, f'{name}.jpg'), quality=92)
        xmin, ymin, xmax, ymax = box
        with open(os.path.join(OUT, f'{name}.xml'), 'w') as f:
            f.write(f'<annotation>\n  <filename>{name}.jpg</filename>\n  <size>\n    <width>{SIZE}</width>\n    <height>{SIZE}</height>\n'
                    f'    <depth>3</depth>\n  </size>\n  <object>\n    <name>{CLASSES[label]}</name>\n    <difficult>0</difficult>\n'
                    f'    <bndbox>\n      <xmin>{xmin + 1}</xmin>\n      <ymin>{ymin + 1}</ymin>\n      <xmax>{xmax + 1}</xmax>\n'
                    f'      <ymax>{ymax + 1}</ymax>\n    </bndbox>\n  </object>\n</annotation>\n')
    with torch.no_grad():
        bench_accuracy = float((net(tensor(bench_images)).argmax(1) == torch.from_numpy(bench_labels.astype(np.int64))).float().mean())
    with open(os.path.join(OUT, 'training_single_scale.json'), 'w') as f:
        json.dump({'torch': torch.__version__, 'classes': CLASSES, 'train_images_per_epoch': 4000, 'epochs': log,
                   'held_out_accuracy': log[-1]['held_out_accuracy'], 'benchmark_accuracy': bench_accuracy}, f, indent=1)
    print('benchmark accuracy', bench_accuracy)


if __name__ == '__main__':
    main()
