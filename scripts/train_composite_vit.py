#!/usr/bin/env python3
"""A small real Vision Transformer for the README's transformer section and the ViT bench (issue 22).

No pretrained ViT weights exist offline, so a torchvision VisionTransformer (patch 16, 224 px, 4 blocks of width 96,
4 heads) is trained from scratch on the composite benchmark's task (scripts/make_composite_benchmark.py: a tinted
Fashion-MNIST item pasted on a photo; which item is it?), with the same curriculum and seeds, and exported with
torch's exporter (opset 17, dynamic height and width, outside torch.no_grad(): torchvision's fused attention does not
export) to assets/models/composite_vit.onnx. Its held-out accuracy and the training log go to
bench/composite/training_vit.json.

Run: /usr/bin/python3 scripts/train_composite_vit.py   (about 35 minutes on 2 cores)
"""
import json
import os
import sys
import time

import numpy as np
import torch
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_composite_benchmark as composite  # noqa: E402

ROOT = composite.ROOT
MODEL = os.path.join(ROOT, 'assets', 'models', 'composite_vit.onnx')
LOG = os.path.join(ROOT, 'bench', 'composite', 'training_vit.json')
EPOCHS = int(os.environ.get('VIT_EPOCHS', '16'))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = np.random.RandomState(0)
    train_images, train_labels = composite.load_idx('train')
    test_images, test_labels = composite.load_idx('t10k')
    held = rng.permutation(len(test_images))
    x_val, _, y_val = composite.make(test_images[held[:1000]], test_labels[held[:1000]], rng)
    net = VisionTransformer(image_size=224, patch_size=16, num_layers=4, num_heads=4, hidden_dim=96, mlp_dim=192,
                            num_classes=len(composite.CLASSES))
    # Adam at a constant 3e-4, lowered for the last 4 epochs: with a warm-up (OneCycle, AdamW) it stayed at chance.
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-4)
    fades = [0.0, 0.0, 0.35, 0.7] + [1.0] * (EPOCHS - 4)
    log, started = [], time.time()
    for epoch, fade in enumerate(fades):
        if epoch == len(fades) - 4:
            for group in optimiser.param_groups:
                group['lr'] = 1e-4
        composite.BACKGROUNDS = composite.faded(fade)
        order = rng.randint(0, len(train_images), 4000)
        x_train, _, y_train = composite.make(train_images[order], train_labels[order], rng)
        composite.BACKGROUNDS = composite.PHOTOS
        # Flips: the items' classes do not depend on their side.
        loss, accuracy = composite.train_epoch(net, optimiser, x_train, y_train, rng,
                                               lambda x, idx: x.flip(3) if rng.rand() < 0.5 else x)
        log.append({'epoch': epoch + 1, 'background_fade': fade, 'loss': loss, 'train_accuracy': accuracy,
                    'held_out_accuracy': composite.held_out_accuracy(net, x_val, y_val),
                    'seconds': round(time.time() - started, 1)})
        print(log[-1], flush=True)
    net.eval()
    # Outside torch.no_grad(): under it torchvision's attention takes a fused path that does not export.
    torch.onnx.export(net, torch.zeros(1, 3, 224, 224), MODEL, input_names=['input'], output_names=['logits'], opset_version=17,
                      dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}, 'logits': {0: 'batch'}})
    # The benchmark's own 100 images (made after the 1000 held out, as make_composite_benchmark.py makes them).
    from PIL import Image
    names = sorted(n for n in os.listdir(composite.OUT) if n.endswith('.jpg'))
    images = np.stack([np.asarray(Image.open(os.path.join(composite.OUT, n)).convert('RGB')) for n in names])
    labels = test_labels[held[1000:1100]]
    with torch.no_grad():
        bench_accuracy = float((net(composite.tensor(images)).argmax(1) == torch.from_numpy(labels.astype(np.int64))).float().mean())
    with open(LOG, 'w') as f:
        json.dump({'torch': torch.__version__, 'classes': composite.CLASSES, 'train_images_per_epoch': 4000, 'epochs': log,
                   'held_out_accuracy': log[-1]['held_out_accuracy'], 'benchmark_accuracy': bench_accuracy}, f, indent=1)
    print('benchmark accuracy', bench_accuracy)


if __name__ == '__main__':
    main()
