import type { OnnxGraph } from './graph.js';

/** Ops between the query-key product and its Softmax: scaling, masks, biases. */
const SCORE_OPS = new Set(['Mul', 'Div', 'Add', 'Sub', 'Where', 'Cast', 'Reshape', 'Identity']);

/**
 * A transformer's attention probabilities, block by block: the Softmax outputs that weight the values (the first
 * input of a MatMul) and are computed from a query-key MatMul (through scaling, masks or a relative bias). Shapes
 * `[N * heads, T, T]` (torch's MultiheadAttention) or `[N, heads, T, T]` (timm, Hugging Face). Empty for CNNs.
 */
export function attentionMaps(graph: OnnxGraph): string[] {
  const found: string[] = [];
  for (const node of graph.nodes) {
    const probabilities = node.output?.[0];
    if (node.opType !== 'Softmax' || !probabilities) continue;
    const weighsValues = (graph.consumers.get(probabilities) ?? []).some(
      (c) =>
        (c.opType === 'MatMul' && c.input?.[0] === probabilities) ||
        ((c.opType === 'Dropout' || c.opType === 'Identity') && weighs(graph, c.output?.[0])),
    );
    if (weighsValues && fromScores(graph, node.input?.[0])) found.push(probabilities);
  }
  return found;
}

function weighs(graph: OnnxGraph, tensor: string | undefined): boolean {
  return !!tensor && (graph.consumers.get(tensor) ?? []).some((c) => c.opType === 'MatMul' && c.input?.[0] === tensor);
}

/** Whether `tensor` comes from a MatMul through at most a few scaling, masking or bias ops. */
function fromScores(graph: OnnxGraph, tensor: string | undefined, depth = 0): boolean {
  const made = tensor ? graph.producers.get(tensor)?.node : undefined;
  if (!made || depth > 4) return false;
  if (made.opType === 'MatMul') return true;
  return SCORE_OPS.has(made.opType ?? '') && (made.input ?? []).some((input) => fromScores(graph, input, depth + 1));
}
