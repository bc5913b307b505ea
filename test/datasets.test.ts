import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCoco } from '../src/datasets/coco.js';
import { loadDataset } from '../src/datasets/load-node.js';
import { classesIn, classMask } from '../src/datasets/mask.js';
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
