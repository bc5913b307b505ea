import { resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { FIXTURES, ROOT } from './helpers.js';
import { ParityChecker, referenceCases } from './parity.js';

describe("CAMERAS equals the authors' PyTorch code (committed mini_resnet subset)", () => {
  const folder = resolve(FIXTURES, 'mini_resnet');
  const checker = new ParityChecker(folder, resolve(ROOT, 'assets/models/mini_resnet.onnx'));
  after(() => checker.dispose());
  for (const c of referenceCases(folder)) it(c.name, () => checker.check(c));
  it('summed over the cases, no farther from the exact map than PyTorch float32', () => checker.checkSummedError());
});
