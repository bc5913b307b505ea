import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  boxIou,
  checkBox,
  clipDetections,
  detect,
  detectionLayout,
  detectionTarget,
  matchingPrediction,
  parseBoxTarget,
  readPredictions,
} from '../src/engine/detections.js';
import type { FloatArray } from '../src/io/npy.js';
import { affinity, driseMask, driseMaskFrom } from '../src/methods/drise.js';
import { energyInside } from '../src/metrics/energy.js';
import { mulberry32 } from '../src/random.js';

// Three predictions of a 2-class detector, written in each layout: (cx, cy, w, h) or corners, objectness, classes.
const ROWS = [
  { centre: [50, 50, 40, 20], objectness: 0.9, classes: [0.8, 0.1] }, // box 30,40,70,60: class 0, score 0.72
  { centre: [52, 50, 40, 20], objectness: 0.8, classes: [0.7, 0.2] }, // overlaps the first (IoU 0.905): suppressed
  { centre: [150, 100, 60, 60], objectness: 0.5, classes: [0.2, 0.9] }, // box 120,70,180,130: class 1, score 0.45
];

function yolo(): FloatArray {
  return { data: Float32Array.from(ROWS.flatMap((r) => [...r.centre, r.objectness, ...r.classes])), shape: [1, 3, 7] };
}

describe('detector outputs, read in each layout', () => {
  it('yolo, yolov8 (transposed, no objectness) and ssd (corners) rows give the same boxes', () => {
    const fromYolo = readPredictions(yolo(), 'yolo');
    assert.deepEqual(fromYolo[0]?.box, [30, 40, 70, 60]);
    assert.ok(Math.abs((fromYolo[0]?.objectness as number) - 0.9) < 1e-7);
    const v8 = new Float32Array(6 * 3);
    for (const [i, r] of ROWS.entries()) for (const [f, v] of [...r.centre, ...r.classes].entries()) v8[f * 3 + i] = v;
    const fromV8 = readPredictions({ data: v8, shape: [1, 6, 3] }, 'yolov8');
    assert.deepEqual(
      fromV8.map((p) => p.box),
      fromYolo.map((p) => p.box),
    );
    assert.equal(fromV8[0]?.objectness, 1, 'no objectness: 1');
    const corners = ROWS.flatMap((r) => {
      const [cx, cy, w, h] = r.centre as [number, number, number, number];
      return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, ...r.classes];
    });
    const fromSsd = readPredictions({ data: Float32Array.from(corners), shape: [1, 3, 6] }, 'ssd');
    assert.deepEqual(
      fromSsd.map((p) => p.box),
      fromYolo.map((p) => p.box),
    );
  });

  it('class-wise NMS keeps the best of overlapping boxes of one class, scored objectness x class score', () => {
    const kept = detect(yolo(), 'yolo');
    assert.deepEqual(
      kept.map((d) => [d.index, d.label]),
      [
        [0, 0],
        [2, 1],
      ],
    );
    assert.ok(Math.abs((kept[0]?.score as number) - 0.72) < 1e-6);
    assert.equal(detect(yolo(), 'yolo', { scoreThreshold: 0.5 }).length, 1, 'the threshold drops the 0.45 one');
    assert.equal(detect(yolo(), 'yolo', { iouThreshold: 0.95 }).length, 3, 'a looser overlap keeps the second');
    // Clipped to a 100 x 100 input: the third box (120..180) lies outside and is dropped, the first kept whole.
    assert.deepEqual(
      clipDetections(detect(yolo(), 'yolo'), 100, 100).map((d) => d.box),
      [[30, 40, 70, 60]],
    );
    assert.ok(Math.abs(boxIou([30, 40, 70, 60], [32, 40, 72, 60]) - 760 / 840) < 1e-12);
  });

  it('the layout is read from the shape where it can be, and refused in one line where not', () => {
    assert.equal(detectionLayout([1, 8400, 85]), 'yolo');
    assert.equal(detectionLayout([1, 84, 8400]), 'yolov8');
    assert.equal(detectionLayout([-1, -1, 15]), 'yolo', 'a dynamic count of predictions, 15 fields');
    assert.equal(detectionLayout([1, 8400, 84], 'ssd'), 'ssd');
    assert.throws(() => detectionLayout([1, 1000]), /not a detector's predictions before NMS .*export the model without NMS/);
    assert.throws(() => detectionLayout([1, 100, 5]), /5 fields per prediction, too few for the yolo layout/);
    assert.throws(() => detectionLayout([1, 100, 9], 'retina' as never), /unknown detection layout 'retina'/);
  });

  it('boxes outside the image, without area, or with a label the model lacks are refused', () => {
    assert.throws(() => checkBox([10, 10, 300, 50], 0, 224, 224, 10), /outside the 224 x 224 image/);
    assert.throws(() => checkBox([10, 10, 5, 50], 0, 224, 224, 10), /has no area/);
    assert.throws(() => checkBox([10, 10, 50, 50], 10, 224, 224, 10), /label 10 is not one of the detector's 10 classes/);
    assert.deepEqual(parseBoxTarget('box:1,2,3.5,4:7'), { box: [1, 2, 3.5, 4], label: 7 });
    assert.deepEqual(parseBoxTarget('box:1,2,3,4'), { box: [1, 2, 3, 4] });
    assert.equal(parseBoxTarget('segment:3'), undefined);
    assert.throws(() => parseBoxTarget('box:1,2,3'), /four numbers/);
  });
});

describe('the targets of a detection', () => {
  const spec = { box: [30, 40, 70, 60] as const, label: 0, size: { width: 200, height: 200 }, layout: 'yolo' as const };

  it("gradient: d(objectness x class score) at the matching prediction, scaled with the pass's input", () => {
    const target = detectionTarget(spec);
    const seed = target.gradient?.(yolo()) as Float32Array;
    const nonZero = [...seed.entries()].filter(([, v]) => v !== 0);
    // Row 0 matches (IoU 1 x 0.9 x 0.8); d/d objectness = class score, d/d class 0 = objectness.
    assert.deepEqual(
      nonZero.map(([i, v]) => [i, Math.round(v * 1e6) / 1e6]),
      [
        [4, 0.8],
        [5, 0.9],
      ],
    );
    // At twice the size the box doubles: a prediction at (100, 100, 80, 40) now matches, the original does not.
    const doubled = yolo();
    doubled.data.set([100, 100, 80, 40], 14);
    assert.equal(matchingPrediction(readPredictions(doubled, 'yolo'), spec, { width: 400, height: 400 }), 2);
    assert.ok(Math.abs(target.score(yolo()) - 1.72) < 1e-6, "pytorch-grad-cam's box score: IoU + the detection's score");
  });

  it("score: FasterRCNNBoxScoreTarget's rule: the highest-IoU detection, counted only with the box's label and IoU above 0.5", () => {
    assert.equal(detectionTarget({ ...spec, label: 1 }).score(yolo()), 0, 'best overlap is of class 0');
    assert.equal(detectionTarget({ ...spec, box: [30, 40, 50, 60] }).score(yolo()), 0, 'IoU 0.5 is not above 0.5');
    const far = detectionTarget({ ...spec, box: [120, 70, 180, 130], label: 1 }).score(yolo());
    assert.ok(Math.abs(far - 1.45) < 1e-6);
  });
});

describe("D-RISE's parts", () => {
  it("masks: a grid of coin flips, nearest-resized with a pad and cropped, as the reference's generate_mask", () => {
    // 2 x 2 grid on 4 x 4 pixels: pad 2, the 6 x 6 resize has 3 x 3 blocks; a crop from (1, 2).
    const mask = driseMaskFrom([1, 0, 0, 1], 1, 2, 2, 4, 4);
    assert.deepEqual(Array.from(mask), [1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1]);
    const a = driseMask(mulberry32(3), 16, 64, 48);
    assert.deepEqual(a, driseMask(mulberry32(3), 16, 64, 48), 'seeded');
    const kept = a.reduce((s, v) => s + v, 0) / a.length;
    assert.ok(kept > 0.3 && kept < 0.7, `about half kept (${kept})`);
  });

  it('affinity: IoU x objectness x class cosine, the best over the detections, 0 for none', () => {
    const [first, , third] = readPredictions(yolo(), 'yolo');
    const target = first as NonNullable<typeof first>;
    assert.ok(Math.abs(affinity(target, [target]) - 0.81) < 1e-6, 'itself: 1 x 0.9 x 0.9 x 1');
    assert.equal(affinity(target, []), 0);
    assert.equal(affinity(target, [third as NonNullable<typeof third>]), 0, 'no overlap');
  });

  it("energy: the map's share inside the region", () => {
    assert.equal(energyInside([1, 1, 2, 0], [0, 0, 1, 1]), 0.5);
    assert.equal(energyInside([0, 0], [1, 0]), 0);
  });
});
