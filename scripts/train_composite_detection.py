#!/usr/bin/env python3
"""A small detector and a small segmenter trained on composite scenes whose boxes and masks are known (issue 23).

Scenes: one to three Fashion-MNIST items (Debian's dataset-fashion-mnist), each tinted and scaled 1.5-4.5x (42-126 px),
pasted onto a random crop of a photo in ../shared/images at 224 px, as scripts/make_composite_benchmark.py pastes one;
each item's box and its silhouette (the segmentation mask) are exact. The curriculum is the classifier's: items on
grey first, then on ever less faded photos. Items come at three times the classifier's range of scales, the detector's
share of issue 25's scale-robust training.

- Detector (assets/models/composite_detector.onnx): a CNN of stride 16 whose head predicts, per cell, a box, an
  objectness and ten class scores, decoded in the graph, exported before NMS as YOLOv5 exports: one
  `detections` [1, cells, 4 + 1 + 10] tensor of (cx, cy, w, h) in input pixels, objectness and class probabilities
  (sigmoids). Each item is assigned to the cell holding its centre.
- Segmenter (assets/models/composite_segmenter.onnx): a CNN of stride 8 whose 11 class scores (background and the ten
  classes) are upsampled bilinearly to the input's size in the graph, as torchvision's FCN does: `out` [1, 11, H, W].

Held out: mAP@0.5 (all-point interpolated AP per class, VOC 2010+, averaged over the ten classes) and mean IoU over the
11 classes, on 500 scenes made from the Fashion-MNIST test split; 100 more are written to bench/composite-detection/ as
JPEGs, a COCO file (boxes, and each item's silhouette as an uncompressed RLE) and PNG label maps, with the log.

Run: /usr/bin/python3 scripts/train_composite_detection.py   (about 15 minutes on 2 cores)
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import nms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_composite_benchmark as composite  # noqa: E402

ROOT = composite.ROOT
SIZE = 224
K = len(composite.CLASSES)
# Input sizes of the training batches: each batch at one, drawn at random (the objects grow with it), so the models
# see items from 42 to 234 px, as CAMERAS shows them at its larger scales.
SIZES = (224, 288, 352, 416)
SCENES_PER_EPOCH = 3000
STRIDE = 16
ANCHOR = 64.0
DETECTOR = os.path.join(ROOT, 'assets', 'models', 'composite_detector.onnx')
# The PyTorch weights too (not shipped), for references computed on the same model (scripts/make_drise_fixture.py).
WEIGHTS = os.path.join(ROOT, 'bench', 'models', 'composite_detector.pt')
SEGMENTER = os.path.join(ROOT, 'assets', 'models', 'composite_segmenter.onnx')
OUT = os.path.join(ROOT, 'bench', 'composite-detection')


def scene(items, labels, rng):
    """A 224 px scene with the items pasted; returns the image, boxes [x1, y1, x2, y2) in pixels, labels, label map."""
    bg = composite.BACKGROUNDS[rng.randint(len(composite.BACKGROUNDS))]
    h, w = bg.shape[:2]
    side = int(rng.uniform(0.5, 1.0) * min(h, w))
    y, x = rng.randint(h - side + 1), rng.randint(w - side + 1)
    image = np.asarray(Image.fromarray(bg[y:y + side, x:x + side]).resize((SIZE, SIZE), Image.BILINEAR)).astype(np.float32)
    segmentation = np.zeros((SIZE, SIZE), np.uint8)
    boxes, kept = [], []
    for item, label in zip(items, labels):
        scaled = int(28 * rng.uniform(1.5, 4.5))
        # A place that overlaps no earlier item's box by more than a fifth of either.
        for _ in range(20):
            y0, x0 = rng.randint(SIZE - scaled + 1), rng.randint(SIZE - scaled + 1)
            area = scaled * scaled
            if all(max(0, min(x0 + scaled, b[2]) - max(x0, b[0])) * max(0, min(y0 + scaled, b[3]) - max(y0, b[1]))
                   < 0.2 * min(area, (b[2] - b[0]) * (b[3] - b[1])) for b in boxes):
                break
        else:
            continue
        alpha = composite.paste(image, item, y0, x0, scaled, rng)
        ys, xs = np.nonzero(alpha > 0.15)
        boxes.append([int(x0 + xs.min()), int(y0 + ys.min()), int(x0 + xs.max()) + 1, int(y0 + ys.max()) + 1])
        kept.append(int(label))
        region = segmentation[y0:y0 + scaled, x0:x0 + scaled]
        region[alpha > 0.5] = label + 1
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), boxes, kept, segmentation


def scenes(images, labels, count, rng):
    out = []
    for _ in range(count):
        n = rng.randint(1, 4)
        pick = rng.randint(0, len(images), n)
        out.append(scene(images[pick], labels[pick], rng))
    return out


def block(i, o, s):
    return [nn.Conv2d(i, o, 3, stride=s, padding=1), nn.BatchNorm2d(o), nn.ReLU()]


class Detector(nn.Module):
    """Stride 16; per cell (cx, cy) = (cell + sigmoid) * 16, (w, h) = 64 exp(t), objectness and classes by sigmoid."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*block(3, 16, 2), *block(16, 32, 2), *block(32, 64, 2), *block(64, 96, 2),
                                      *block(96, 128, 1), *block(128, 128, 1))
        self.head = nn.Conv2d(128, 5 + K, 1)

    def raw(self, x):
        return self.head(self.features(x))

    def forward(self, x):
        p = self.raw(x)
        h, w = p.shape[2], p.shape[3]
        gy = torch.arange(h, dtype=torch.float32).view(1, h, 1).expand(1, h, w)
        gx = torch.arange(w, dtype=torch.float32).view(1, 1, w).expand(1, h, w)
        cx = (gx + torch.sigmoid(p[:, 0])) * STRIDE
        cy = (gy + torch.sigmoid(p[:, 1])) * STRIDE
        bw = ANCHOR * torch.exp(torch.clamp(p[:, 2], -4.0, 4.0))
        bh = ANCHOR * torch.exp(torch.clamp(p[:, 3], -4.0, 4.0))
        rest = torch.sigmoid(p[:, 4:])
        out = torch.cat([cx.unsqueeze(1), cy.unsqueeze(1), bw.unsqueeze(1), bh.unsqueeze(1), rest], 1)
        return out.flatten(2).transpose(1, 2)


class Segmenter(nn.Module):
    """Stride 8, 11 class scores upsampled bilinearly to the input's size (as torchvision's FCN)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*block(3, 16, 2), *block(16, 32, 2), *block(32, 64, 2), *block(64, 96, 1),
                                      *block(96, 96, 1))
        self.classifier = nn.Sequential(*block(96, 64, 1), nn.Conv2d(64, K + 1, 1))

    def forward(self, x):
        return F.interpolate(self.classifier(self.features(x)), size=x.shape[-2:], mode='bilinear', align_corners=False)


def detector_loss(p, batch):
    """YOLO-style: objectness BCE over all cells; box offsets, log sizes and classes at each item's centre cell."""
    b, _, h, w = p.shape
    obj_target = torch.zeros(b, h, w)
    xy_target, wh_target, cls_target = torch.zeros(b, 2, h, w), torch.zeros(b, 2, h, w), torch.zeros(b, K, h, w)
    for i, (_, boxes, labels, _) in enumerate(batch):
        for (x1, y1, x2, y2), label in zip(boxes, labels):
            cx, cy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
            gx, gy = min(int(cx), w - 1), min(int(cy), h - 1)
            obj_target[i, gy, gx] = 1
            xy_target[i, :, gy, gx] = torch.tensor([cx - gx, cy - gy])
            wh_target[i, :, gy, gx] = torch.log(torch.tensor([(x2 - x1) / ANCHOR, (y2 - y1) / ANCHOR]))
            cls_target[i, :, gy, gx] = 0
            cls_target[i, label, gy, gx] = 1
    positive = obj_target.bool()
    loss = F.binary_cross_entropy_with_logits(p[:, 4], obj_target, pos_weight=torch.tensor(5.0))
    if positive.any():
        pick = lambda t: t.permute(0, 2, 3, 1)[positive]  # noqa: E731
        loss = loss + F.binary_cross_entropy_with_logits(pick(p[:, 0:2]), pick(xy_target)) \
            + F.smooth_l1_loss(pick(p[:, 2:4]), pick(wh_target)) + F.binary_cross_entropy_with_logits(pick(p[:, 5:]), pick(cls_target))
    return loss


def detect(net, x, threshold=0.01, iou=0.45, top=100):
    """Decoded predictions through class-wise NMS: per image a list of (box xyxy, score, label)."""
    out = []
    with torch.no_grad():
        predictions = net(x)
    for pred in predictions:
        boxes = torch.cat([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], 1)
        scores, labels = (pred[:, 5:] * pred[:, 4:5]).max(1)
        keep = scores > threshold
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        # Class-wise NMS by offsetting each class's boxes apart.
        kept = nms(boxes + labels[:, None] * 4096.0, scores, iou)[:top]
        out.append([(boxes[k].tolist(), float(scores[k]), int(labels[k])) for k in kept])
    return out


def iou_of(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def mean_ap(detections, truth):
    """VOC all-point AP at IoU 0.5 per class (greedy matching by score), averaged over the classes present."""
    aps = []
    for c in range(K):
        gts = {i: [b for b, l in zip(boxes, labels) if l == c] for i, (boxes, labels) in enumerate(truth)}
        total = sum(len(v) for v in gts.values())
        if total == 0:
            continue
        used = {i: [False] * len(v) for i, v in gts.items()}
        preds = sorted([(s, i, b) for i, d in enumerate(detections) for b, s, l in d if l == c], key=lambda t: -t[0])
        tp = []
        for _, i, box in preds:
            ious = [iou_of(box, g) for g in gts[i]]
            j = int(np.argmax(ious)) if ious else -1
            if j >= 0 and ious[j] >= 0.5 and not used[i][j]:
                used[i][j] = True
                tp.append(1)
            else:
                tp.append(0)
        tp = np.array(tp, dtype=np.float64)
        cum = np.cumsum(tp)
        recall = np.concatenate([[0], cum / total, [1]])
        precision = np.concatenate([[0], cum / np.maximum(np.arange(1, len(tp) + 1), 1), [0]])
        for k in range(len(precision) - 2, -1, -1):
            precision[k] = max(precision[k], precision[k + 1])
        steps = np.nonzero(recall[1:] != recall[:-1])[0]
        aps.append(float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1])))
    return float(np.mean(aps))


def mean_iou(net, data):
    inter, union = np.zeros(K + 1), np.zeros(K + 1)
    for s in range(0, len(data), 50):
        chunk = data[s:s + 50]
        with torch.no_grad():
            predicted = net(composite.tensor(np.stack([d[0] for d in chunk]))).argmax(1).numpy()
        truth = np.stack([d[3] for d in chunk])
        for c in range(K + 1):
            inter[c] += np.sum((predicted == c) & (truth == c))
            union[c] += np.sum((predicted == c) | (truth == c))
    return float(np.mean(inter[union > 0] / union[union > 0]))


def train(net, loss_of, fades, rng, train_images, train_labels, log, name, evaluate, sizes=(SIZE,)):
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    started = time.time()
    for epoch, fade in enumerate(fades):
        if epoch == len(fades) - 3:
            for group in optimiser.param_groups:
                group['lr'] = 3e-4
        composite.BACKGROUNDS = composite.faded(fade)
        data = scenes(train_images, train_labels, SCENES_PER_EPOCH, rng)
        composite.BACKGROUNDS = composite.PHOTOS
        net.train()
        order = rng.permutation(len(data))
        total = 0.0
        for start in range(0, len(order), 32):
            batch = [data[k] for k in order[start:start + 32]]
            x = composite.tensor(np.stack([b[0] for b in batch]))
            if rng.rand() < 0.5:
                # A horizontal flip of the whole batch, its boxes and masks with it.
                x = x.flip(3)
                batch = [(img[:, ::-1], [[SIZE - b[2], b[1], SIZE - b[0], b[3]] for b in boxes], labels, seg[:, ::-1])
                         for img, boxes, labels, seg in batch]
            size = int(rng.choice(sizes))
            if size != SIZE:
                # Multi-scale training, as YOLO trains: the batch resized, its boxes and masks with it.
                x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
                f = size / SIZE
                batch = [(img, [[v * f for v in b] for b in boxes], labels,
                          np.asarray(Image.fromarray(seg).resize((size, size), Image.NEAREST)))
                         for img, boxes, labels, seg in batch]
            loss = loss_of(net, x, batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss) * len(batch)
        net.eval()
        log.append({'model': name, 'epoch': epoch + 1, 'background_fade': fade, 'loss': total / len(data),
                    'held_out': evaluate(), 'seconds': round(time.time() - started, 1)})
        print(log[-1], flush=True)


def write_benchmark(data):
    os.makedirs(OUT, exist_ok=True)
    coco = {'images': [], 'annotations': [], 'categories': [{'id': k, 'name': n} for k, n in enumerate(composite.CLASSES)]}
    for i, (image, boxes, labels, segmentation) in enumerate(data):
        name = f'scene_{i:03d}'
        Image.fromarray(image).save(os.path.join(OUT, f'{name}.jpg'), quality=92)
        Image.fromarray(segmentation).save(os.path.join(OUT, f'{name}.png'))
        coco['images'].append({'id': i, 'file_name': f'{name}.jpg', 'width': SIZE, 'height': SIZE})
        for box, label in zip(boxes, labels):
            coco['annotations'].append({'id': len(coco['annotations']), 'image_id': i, 'category_id': label,
                                        'bbox': [box[0], box[1], box[2] - box[0], box[3] - box[1]], 'iscrowd': 0,
                                        'area': (box[2] - box[0]) * (box[3] - box[1])})
    with open(os.path.join(OUT, 'annotations.json'), 'w') as f:
        json.dump(coco, f)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = np.random.RandomState(0)
    train_images, train_labels = composite.load_idx('train')
    test_images, test_labels = composite.load_idx('t10k')
    held = scenes(test_images[:5000], test_labels[:5000], 500, rng)
    bench = scenes(test_images[5000:], test_labels[5000:], 100, rng)
    x_held = composite.tensor(np.stack([d[0] for d in held]))
    log = []
    fades = [0.0, 0.35, 0.7] + [1.0] * 11

    detector = Detector()
    evaluate_detector = lambda: mean_ap(detect(detector, x_held), [(d[1], d[2]) for d in held])  # noqa: E731
    train(detector, lambda net, x, batch: detector_loss(net.raw(x), batch), fades, rng, train_images, train_labels, log,
          'detector', evaluate_detector, SIZES)
    os.makedirs(os.path.dirname(WEIGHTS), exist_ok=True)
    torch.save(detector.state_dict(), WEIGHTS)
    torch.onnx.export(detector, torch.randn(1, 3, SIZE, SIZE), DETECTOR, input_names=['input'], output_names=['detections'],
                      opset_version=13, dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'},
                                                      'detections': {0: 'batch', 1: 'cells'}})

    segmenter = Segmenter()

    def segmentation_loss(net, x, batch):
        target = torch.from_numpy(np.stack([np.ascontiguousarray(b[3]) for b in batch]).astype(np.int64))
        return F.cross_entropy(net(x), target)

    train(segmenter, segmentation_loss, fades, rng, train_images, train_labels, log, 'segmenter', lambda: mean_iou(segmenter, held), SIZES)
    torch.onnx.export(segmenter, torch.randn(1, 3, SIZE, SIZE), SEGMENTER, input_names=['input'], output_names=['out'],
                      opset_version=13, dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'},
                                                      'out': {0: 'batch', 2: 'height', 3: 'width'}})
    write_benchmark(bench)
    x_bench = composite.tensor(np.stack([d[0] for d in bench]))
    result = {'torch': torch.__version__, 'classes': composite.CLASSES, 'scenes_per_epoch': SCENES_PER_EPOCH,
              'training_sizes': list(SIZES), 'epochs': log,
              'held_out_map50': log[len(fades) - 1]['held_out'], 'held_out_mean_iou': log[-1]['held_out'],
              'benchmark_map50': mean_ap(detect(detector, x_bench), [(d[1], d[2]) for d in bench]),
              'benchmark_mean_iou': mean_iou(segmenter, bench)}
    with open(os.path.join(OUT, 'training.json'), 'w') as f:
        json.dump(result, f, indent=1)
    print({k: v for k, v in result.items() if k != 'epochs'})


if __name__ == '__main__':
    main()
