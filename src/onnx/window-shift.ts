import type { OnnxGraph } from './graph.js';
import { modulePath } from './layers.js';

/**
 * The shifted-window blocks of a Swin export that the exporter froze unshifted. torchvision's Swin decides in Python
 * whether a block shifts its windows (not when the window covers the whole padded feature map), so a trace at 224 px
 * keeps its last stage (7 x 7, the window's size) unshifted, and at larger inputs the graph computes another function
 * than the model (its logits off by 0.03-0.06 on the fixture at 256 and 320 px). A window-attention block pads its
 * input to whole windows (a Pad in its `attn` scope, which a ViT's attention lacks); within a stage blocks alternate
 * and the odd ones shift, building their attention mask (ScatterND). Returns the odd window blocks without a mask:
 * empty for CNNs, ViTs and Swins exported right at every size.
 */
export function unshiftedWindowBlocks(graph: OnnxGraph): string[] {
  const blocks = new Map<string, { pads: boolean; mask: boolean }>();
  for (const node of graph.nodes) {
    const match = /^(.*\.\d+\.(\d+))\.attn(\.|$)/.exec(modulePath(node.name ?? '') ?? '');
    if (!match || Number(match[2]) % 2 === 0) continue;
    const block = blocks.get(match[1] as string) ?? { pads: false, mask: false };
    block.pads ||= node.opType === 'Pad';
    block.mask ||= node.opType === 'ScatterND';
    blocks.set(match[1] as string, block);
  }
  return [...blocks.entries()].filter(([, b]) => b.pads && !b.mask).map(([name]) => name);
}
