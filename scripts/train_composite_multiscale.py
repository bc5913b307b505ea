#!/usr/bin/env python3
"""The composite classifier trained as ImageNet models are (issue 25): the same small CNN as
scripts/make_composite_benchmark.py (five conv blocks, global average pooling), the same composites, curriculum and
seeds, but each training image a random resized crop (area 8-100%, aspect 3/4-4/3, as torchvision's
RandomResizedCrop draws them, grown where needed to keep 0.7 of the item's width and height, and placed over the
item rather than anywhere) resized to 224 px, and flipped half the time, so it sees each item at many scales; 30
epochs with a cosine learning rate. Exported to
assets/models/composite_fashion.onnx (the zoo's `composite:fashion`); its training log and held-out accuracy go to
bench/composite/training_multiscale.json (accuracy per input scale: node dist/bench/composite-scales.js).

Run: /usr/bin/python3 scripts/train_composite_multiscale.py   (about 28 minutes on 2 cores)
"""
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_composite_benchmark as composite  # noqa: E402

ROOT = composite.ROOT
MODEL = os.path.join(ROOT, 'assets', 'models', 'composite_fashion.onnx')
LOG = os.path.join(ROOT, 'bench', 'composite', 'training_multiscale.json')
# The trained state dict (BatchNorm unfused, unlike the ONNX export), git-ignored: what a longer run would start from.
WEIGHTS = os.path.join(ROOT, 'bench', 'models', 'composite_fashion_multiscale.pt')
EPOCHS = 30


# A crop keeps at least this share of the item's width and of its height (about half its area): torchvision's crops
# cut objects too, and the share lets an item fill up to 1/0.7 of the 224 px view (320 px), where a crop that had to
# hold the whole item kept it within the view. The zoom itself comes from the area draw: at most ~4x (8%, aspect 3/4).
KEEP = 0.7


def crops(x, boxes, generator):
    """Random resized crops (area 8-100%, aspect 3/4-4/3, as torchvision's RandomResizedCrop draws them) that keep
    about half the item: a side shorter than KEEP of the item's box grows to it, a side longer than the image is
    clamped to 224 (torchvision draws again instead), and every crop is placed over the item (see `place`), not
    anywhere. On a composite a plain 8% crop misses the item most of the time (it covers 6-25% of the image), which
    taught the first run noise; a crop that must hold the whole item never shows it larger than the 224 px view, and
    left the second run's accuracy falling past 324 px inputs."""
    out = []
    for image, (bx1, by1, bx2, by2) in zip(x, boxes):
        area = float(torch.empty(1).uniform_(0.08, 1.0, generator=generator)) * 224 * 224
        ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)))
        w = min(224, max(int(round(math.sqrt(area * ratio))), math.ceil(KEEP * (bx2 - bx1 + 1))))
        h = min(224, max(int(round(math.sqrt(area / ratio))), math.ceil(KEEP * (by2 - by1 + 1))))
        left = place(bx1, bx2, w, generator)
        top = place(by1, by2, h, generator)
        patch = image[:, top:top + h, left:left + w].unsqueeze(0)
        patch = F.interpolate(patch, size=(224, 224), mode='bilinear', align_corners=False, antialias=True)[0]
        if torch.rand(1, generator=generator) < 0.5:
            patch = patch.flip(2)
        out.append(patch)
    return torch.stack(out)


def place(start, end, size, generator):
    """A crop's offset along one axis where it overlaps the item [start, end] by min(size, item) pixels: around the item
    when the crop is wider, inside it when narrower; kept in the 224 px image."""
    lo, hi = sorted((start, end + 1 - size))
    lo, hi = max(0, lo), min(224 - size, hi)
    return int(torch.randint(lo, max(lo, hi) + 1, (1,), generator=generator))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    rng = np.random.RandomState(0)
    train_images, train_labels = composite.load_idx('train')
    test_images, test_labels = composite.load_idx('t10k')
    held = rng.permutation(len(test_images))
    x_val, _, y_val = composite.make(test_images[held[:1000]], test_labels[held[:1000]], rng)
    net = composite.Net()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    fades = [0.0, 0.35, 0.7] + [1.0] * (EPOCHS - 3)
    # Cosine decay per epoch, as torchvision's recipes end: the constant rate of the second run left held-out accuracy
    # jumping by 0.05 between epochs.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, EPOCHS, eta_min=1e-5)
    log, started = [], time.time()
    for epoch, fade in enumerate(fades):
        composite.BACKGROUNDS = composite.faded(fade)
        order = rng.randint(0, len(train_images), 4000)
        x_train, b_train, y_train = composite.make(train_images[order], train_labels[order], rng)
        composite.BACKGROUNDS = composite.PHOTOS
        loss, accuracy = composite.train_epoch(net, optimiser, x_train, y_train, rng,
                                               lambda x, idx: crops(x, [b_train[k] for k in idx], generator))
        log.append({'epoch': epoch + 1, 'background_fade': fade, 'loss': loss, 'train_accuracy': accuracy,
                    'held_out_accuracy': composite.held_out_accuracy(net, x_val, y_val),
                    'lr': optimiser.param_groups[0]['lr'], 'seconds': round(time.time() - started, 1)})
        print(log[-1], flush=True)
        schedule.step()
    os.makedirs(os.path.dirname(WEIGHTS), exist_ok=True)
    torch.save(net.state_dict(), WEIGHTS)
    net.eval()
    torch.onnx.export(net, torch.randn(1, 3, 224, 224), MODEL, input_names=['input'], output_names=['logits'], opset_version=13,
                      dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}, 'logits': {0: 'batch'}})
    with open(LOG, 'w') as f:
        json.dump({'torch': torch.__version__, 'classes': composite.CLASSES, 'train_images_per_epoch': 4000, 'epochs': log,
                   'augmentation': 'random resized crops (area 8-100%, aspect 3/4-4/3) grown to keep at least 0.7 of the item\'s width and height, and horizontal flips',
                   'lr_schedule': 'cosine from 1e-3 to 1e-5 over the epochs',
                   'held_out_accuracy': log[-1]['held_out_accuracy']}, f, indent=1)


if __name__ == '__main__':
    main()
