import * as conv from './conv.js';
import * as elementwise from './elementwise.js';
import * as linear from './linear.js';
import type { VjpRule } from './rule.js';
import * as shape from './shape.js';

/** Vector-Jacobian rules by ONNX op type (default domain). */
export const vjpRules: Readonly<Record<string, VjpRule>> = {
  Conv: conv.conv,
  ConvTranspose: conv.convTranspose,
  MaxPool: conv.maxPool,
  AveragePool: conv.averagePool,
  GlobalAveragePool: conv.globalAveragePool,
  Resize: conv.resize,
  BatchNormalization: conv.batchNormalization,
  Gemm: linear.gemm,
  MatMul: linear.matMul,
  Add: elementwise.add,
  Sub: elementwise.sub,
  Mul: elementwise.mul,
  Div: elementwise.div,
  Sum: elementwise.sum,
  Relu: elementwise.relu,
  LeakyRelu: elementwise.leakyRelu,
  PRelu: elementwise.prelu,
  Clip: elementwise.clip,
  Sigmoid: elementwise.sigmoid,
  HardSigmoid: elementwise.hardSigmoid,
  HardSwish: elementwise.hardSwish,
  Tanh: elementwise.tanh,
  Exp: elementwise.exp,
  Neg: elementwise.neg,
  Sqrt: elementwise.sqrt,
  Erf: elementwise.erf,
  Gelu: elementwise.gelu,
  Pow: elementwise.pow,
  Softmax: elementwise.softmax,
  LayerNormalization: elementwise.layerNormalization,
  Where: elementwise.where,
  Cast: elementwise.cast,
  Identity: elementwise.identity,
  Dropout: elementwise.identity,
  Reshape: shape.reshapeLike,
  Flatten: shape.reshapeLike,
  Squeeze: shape.reshapeLike,
  Unsqueeze: shape.reshapeLike,
  Transpose: shape.transpose,
  Expand: shape.expand,
  Concat: shape.concat,
  Split: shape.split,
  Slice: shape.slice,
  Gather: shape.gather,
  Pad: shape.pad,
  ReduceMean: shape.reduceMean,
  ReduceSum: shape.reduceSum,
};

export { VjpContext } from './context.js';
export type { VjpRule } from './rule.js';
