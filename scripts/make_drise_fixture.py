#!/usr/bin/env python3
"""D-RISE's reference map on the composite detector, on masks both sides can draw (test/fixtures/drise/, committed).

Run with Debian's python3-torch 1.13 / python3-torchvision 0.14, after scripts/train_composite_detection.py (which
leaves the detector's PyTorch weights in bench/models/composite_detector.pt), given a checkout of
microsoft/vision-explanation-methods (github.com/microsoft/vision-explanation-methods), whose `drise` module runs
unmodified (pandas, imported for its MLflow entry point only, is stubbed):

    /usr/bin/python3 scripts/make_drise_fixture.py <vision-explanation-methods checkout>

The reference's `DRISE_saliency` draws each mask with `generate_mask` (a 16 x 16 grid of coin flips, nearest-resized
to (H + pad) x (W + pad), then a random H x W crop); here `generate_mask` is replaced by one that draws the same way
and records each mask's grid and crop offsets, so the test rebuilds the very masks from cases.json. The model wrapper
reads the detector's output as ours does: (cx, cy, w, h, objectness, 10 class scores) per cell, score = objectness x
best class score above 0.05, class-wise NMS at IoU 0.45 (torchvision's batched_nms), at most 100.
"""
import json
import os
import sys
import types

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torchvision.ops import batched_nms

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'drise')
REFERENCE = os.path.abspath(sys.argv[1])
sys.modules['pandas'] = types.ModuleType('pandas')
sys.modules['pandas'].DataFrame = type('DataFrame', (), {})
sys.path.insert(0, os.path.join(REFERENCE, 'python'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vision_explanation_methods.explanations import drise  # noqa: E402
from vision_explanation_methods.explanations.common import DetectionRecord, GeneralObjectDetectionModelWrapper  # noqa: E402

import train_composite_detection as training  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
IMAGES = ['scene_000.jpg', 'scene_004.jpg']
MASKS = 200


class Wrapper(GeneralObjectDetectionModelWrapper):
    def __init__(self, net):
        self.net = net

    def predict(self, x):
        with torch.no_grad():
            predictions = self.net((x - MEAN) / STD)
        records = []
        for pred in predictions:
            boxes = torch.cat([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], 1)
            objectness, classes = pred[:, 4], pred[:, 5:]
            scores, labels = (classes * objectness[:, None]).max(1)
            keep = torch.nonzero(scores > 0.05).flatten()
            kept = keep[batched_nms(boxes[keep], scores[keep], labels[keep], 0.45)][:100]
            records.append(DetectionRecord(bounding_boxes=boxes[kept], objectness_scores=objectness[kept], class_scores=classes[kept]))
        return records


def main():
    net = training.Detector()
    net.load_state_dict(torch.load(os.path.join(ROOT, 'bench', 'models', 'composite_detector.pt')))
    net.eval()
    model = Wrapper(net)
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    cases = []
    for name in IMAGES:
        image = torch.from_numpy(np.asarray(Image.open(os.path.join(ROOT, 'bench', 'composite-detection', name)).convert('RGB')).copy())
        x = image.permute(2, 0, 1).float().div(255)[None]
        stem = name.split('.')[0]
        np.save(os.path.join(OUT, f'{stem}.input.npy'), ((x - MEAN) / STD).numpy().astype(np.float32))
        detections = model.predict(x)[0]
        top = detections.get_by_index([0])
        drawn = []

        def generate_mask(base_size, img_size, padding, device):
            # As the reference's generate_mask, recording the grid and the crop.
            base_mask = 1.0 * torch.randint(0, 2, base_size, device=device)
            resized = T.Resize((img_size[0] + padding, img_size[1] + padding), interpolation=Image.NEAREST)(base_mask.repeat([3, 1, 1]))
            i, j, h, w = T.RandomCrop.get_params(resized, img_size)
            drawn.append({'grid': ''.join(str(int(v)) for v in base_mask.flatten().tolist()), 'top': i, 'left': j})
            return resized[:, i:i + h, j:j + w]

        drise.generate_mask = generate_mask
        saliency = drise.DRISE_saliency(model, x[0], [top], MASKS, mask_res=(16, 16))[0][0]['detection'][0]
        np.save(os.path.join(OUT, f'{stem}.drise.npy'), saliency.numpy().astype(np.float32))
        box = top.bounding_boxes[0].tolist()
        cases.append({'input': f'{stem}.input.npy', 'map': f'{stem}.drise.npy', 'box': box,
                      'label': int(top.class_scores[0].argmax()), 'objectness': float(top.objectness_scores[0]),
                      'masks': drawn, 'padding': int(max(224 / 16, 224 / 16))})
        print(name, 'box', [round(v, 1) for v in box], 'label', cases[-1]['label'], flush=True)
    commit = open(os.path.join(REFERENCE, 'COMMIT')).read().strip() if os.path.exists(os.path.join(REFERENCE, 'COMMIT')) else 'unknown'
    with open(os.path.join(OUT, 'cases.json'), 'w') as f:
        json.dump({'torch': torch.__version__, 'reference': commit, 'model': 'assets/models/composite_detector.onnx', 'grid': 16,
                   'cases': cases}, f)


if __name__ == '__main__':
    main()
