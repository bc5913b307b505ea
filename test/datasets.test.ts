import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeRleString, parseCoco } from '../src/datasets/coco.js';
import { loadDataset } from '../src/datasets/load-node.js';
import { classesIn, classMask, isDifficultPair } from '../src/datasets/mask.js';
import { formatVoc, parseVoc } from '../src/datasets/voc.js';
import { CamerasError } from '../src/errors.js';

const VOC = `<annotation>
  <filename>000001.jpg</filename>
  <size><width>10</width><height>8</height><depth>3</depth></size>
  <object><name>dog</name><difficult>0</difficult><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>4</xmax><ymax>5</ymax></bndbox></object>
  <object><name>cat</name><difficult>1</difficult><bndbox><xmin>6</xmin><ymin>1</ymin><xmax>10</xmax><ymax>2</ymax></bndbox></object>
  <object><name>dog</name><bndbox><xmin>9</xmin><ymin>8</ymin><xmax>10</xmax><ymax>8</ymax></bndbox></object>
</annotation>`;

describe('annotations', () => {
  it("reads VOC: 1-based inclusive boxes, difficult flags; masks are the union of a class's boxes", () => {
    const a = parseVoc(VOC, 'a.xml');
    assert.deepEqual([a.file, a.width, a.height, a.objects.length], ['000001.jpg', 10, 8, 3]);
    assert.deepEqual(a.objects[0]?.box, { xmin: 1, ymin: 2, xmax: 3, ymax: 4 });
    assert.deepEqual(classesIn(a), ['dog', 'cat']);
    const dog = classMask(a, 'dog');
    assert.ok(dog);
    const set = [...dog.data.keys()].filter((i) => dog.data[i]).map((i) => [i % 10, Math.floor(i / 10)]);
    // 3 x 3 box at x 1..3, y 2..4, and 2 x 1 at x 8..9, y 7.
    assert.equal(set.length, 11);
    assert.equal(classMask(a, 'cat'), undefined, "a pair whose boxes are all 'difficult' is skipped");
    // Zhang et al.'s 'difficult' subset: 11 of 80 pixels (< 1/4) and another class (cat) in the image.
    assert.equal(isDifficultPair(a, 'dog', dog), true);
    const alone = { ...a, objects: a.objects.filter((o) => o.className === 'dog') };
    assert.equal(isDifficultPair(alone, 'dog', dog), false, 'no other class: not difficult');
    const big = { ...dog, data: dog.data.map((_, i) => (i < 20 ? 1 : 0)) };
    assert.equal(isDifficultPair(a, 'dog', big), false, 'a quarter of the image (20 of 80): not difficult');
    assert.deepEqual(parseVoc(formatVoc(a), 'b.xml'), a);
  });

  it('refuses a malformed VOC file in one line naming the file and the field', () => {
    assert.throws(
      () => parseVoc(VOC.replace('<xmax>4</xmax>', ''), 'bad.xml'),
      (e: Error) => e instanceof CamerasError && /^bad\.xml: object 1 bndbox <xmax> is missing$/.test(e.message),
    );
    assert.throws(() => parseVoc(VOC.replace(/<size>.*<\/size>/, ''), 'bad.xml'), /bad\.xml: <size> is missing/);
    assert.throws(() => parseVoc('<html></html>', 'page.xml'), /page\.xml is not a VOC annotation/);
  });

  it('reads COCO: boxes [x, y, w, h] and polygons; refuses a file that is not JSON', () => {
    const coco = JSON.stringify({
      images: [{ id: 7, file_name: 'a.jpg', width: 6, height: 6 }],
      annotations: [{ image_id: 7, category_id: 3, bbox: [1, 1, 3, 3], segmentation: [[1, 1, 4, 1, 4, 4, 1, 4]] }],
      categories: [{ id: 3, name: 'bird' }],
    });
    const [a] = parseCoco(coco, 'c.json');
    assert.deepEqual(a?.objects[0]?.box, { xmin: 1, ymin: 1, xmax: 3, ymax: 3 });
    const mask = classMask(a as never, 'bird');
    // The square (1,1)-(4,4): pixel centres 1.5 .. 3.5 inside, 9 pixels.
    assert.equal(
      mask?.data.reduce((s, v) => s + v, 0),
      9,
    );
    assert.throws(() => parseCoco('{not json', 'c.json'), /c\.json is not JSON/);
    assert.throws(
      () => parseCoco(coco.replace('[[1, 1, 4, 1, 4, 4, 1, 4]]'.replace(/ /g, ''), '{"counts":[3]}'), 'c.json'),
      /segmentation needs 'size'/,
    );
  });

  it('reads COCO crowd regions: run lengths as a list or a compressed string (pycocotools encoding)', () => {
    // A 4 x 5 mask (rows 1-2, columns 1-3, and pixel (x 4, y 0)); column-major runs from pycocotools' rule.
    assert.deepEqual(decodeRleString('522000OO2'), [5, 2, 2, 2, 2, 2, 1, 1, 3]);
    // 300 x 400: rows 10..249 of columns 20..29 and rows 100..101 of columns 200..389 (multi-group, negative deltas).
    const counts = decodeRleString(`jk5\`7l1${'0'.repeat(17)}bla1bHlZ^N${'0'.repeat(377)}dj2`);
    assert.equal(counts.length, 401);
    assert.deepEqual(counts.slice(0, 3), [6010, 240, 60]);
    const coco = (counts: unknown) =>
      JSON.stringify({
        images: [{ id: 1, file_name: 'a.jpg', width: 400, height: 300 }],
        annotations: [{ image_id: 1, category_id: 1, bbox: [20, 10, 370, 240], iscrowd: 1, segmentation: { counts, size: [300, 400] } }],
        categories: [{ id: 1, name: 'person' }],
      });
    for (const form of [`jk5\`7l1${'0'.repeat(17)}bla1bHlZ^N${'0'.repeat(377)}dj2`, counts]) {
      const mask = classMask(parseCoco(coco(form), 'c.json')[0] as never, 'person');
      assert.ok(mask);
      assert.equal(
        mask.data.reduce((a, v) => a + v, 0),
        240 * 10 + 2 * 190,
      );
      assert.deepEqual(
        [mask.data[10 * 400 + 20], mask.data[9 * 400 + 20], mask.data[101 * 400 + 389], mask.data[102 * 400 + 389]],
        [1, 0, 1, 0],
      );
    }
    assert.throws(() => parseCoco(coco([5, 5]), 'c.json'), /run lengths do not cover its 300 x 400 size/);
    assert.throws(() => parseCoco('{"images": []}', 'c.json'), /c\.json: the 'annotations' list is missing/);
  });

  describe('data sets on disk', () => {
    const folder = mkdtempSync(join(tmpdir(), 'cameras-data-'));
    after(() => rmSync(folder, { recursive: true, force: true }));
    it('loads a VOC folder (Annotations/ and JPEGImages/) and a flat one; a folder with no annotation is one line', async () => {
      mkdirSync(join(folder, 'voc/Annotations'), { recursive: true });
      mkdirSync(join(folder, 'voc/JPEGImages'));
      writeFileSync(join(folder, 'voc/Annotations/000001.xml'), VOC);
      writeFileSync(join(folder, 'voc/JPEGImages/000001.jpg'), 'x');
      const items = await loadDataset(join(folder, 'voc'));
      assert.equal(items[0]?.image, join(folder, 'voc/JPEGImages/000001.jpg'));
      mkdirSync(join(folder, 'empty'));
      await assert.rejects(loadDataset(join(folder, 'empty')), /has no VOC annotations/);
      await assert.rejects(loadDataset(join(folder, 'nothing-here')), /does not exist/);
    });
  });
});
