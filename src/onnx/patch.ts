import type { OnnxGraph } from './graph.js';

/** Ops a patch embedding may follow on the input: preprocessing folded into the graph. */
const PASS = new Set(['Sub', 'Div', 'Mul', 'Add', 'Cast', 'Identity', 'Transpose']);

/**
 * A transformer's patch embedding: a Conv on the input (past elementwise preprocessing) whose kernel equals its
 * stride, square and at least 4 (ViT's 16 x 16, Swin's 4 x 4). Its output `[N, C, h, w]` is the grid of patches;
 * undefined for CNNs.
 */
export function patchGrid(graph: OnnxGraph): { tensor: string; patch: number } | undefined {
  let frontier = graph.inputNames.slice(0, 1);
  for (let depth = 0; depth < 6 && frontier.length > 0; depth++) {
    const next: string[] = [];
    for (const tensor of frontier)
      for (const node of graph.consumers.get(tensor) ?? []) {
        if (node.opType === 'Conv') {
          const ints = (name: string) => node.attribute?.find((a) => a.name === name)?.ints?.map(Number);
          const [kernel, stride] = [ints('kernel_shape'), ints('strides')];
          const side = kernel?.[0];
          const output = node.output?.[0];
          if (output && side && side >= 4 && kernel?.every((k) => k === side) && stride?.every((s) => s === side))
            return { tensor: output, patch: side };
          return undefined;
        }
        if (PASS.has(node.opType ?? '')) next.push(...(node.output ?? []));
      }
    frontier = next;
  }
  return undefined;
}
