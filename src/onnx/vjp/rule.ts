import type { NodeProto } from '../proto.js';
import type { VjpContext } from './context.js';

/**
 * A vector-Jacobian rule: given the gradients arriving at a node's outputs (undefined where none
 * arrives), return the gradient for each input that `wanted` marks (undefined for the others).
 */
export type VjpRule = (
  ctx: VjpContext,
  node: NodeProto,
  outputGradients: (string | undefined)[],
  wanted: boolean[],
) => (string | undefined)[];
