import { CamerasError } from '../errors.js';
import type { OnnxGraph } from './graph.js';
import type { NodeProto } from './proto.js';

/** A layer a user can name: a torch module path (when the exporter kept scopes) and its output tensor. */
export interface Layer {
  /** Module path such as `layer4` or `layer4.1`, or the tensor name where no scope exists. */
  name: string;
  /** The ONNX tensor that is the layer's output. */
  tensor: string;
  /** Op type of the node making the tensor. */
  opType: string;
}

/**
 * The torch module path of a node from its exported name, e.g. `/layer4/layer4.1/conv1/Conv` ->
 * `layer4.1.conv1`: each scope is either the child's attribute name or, inside a Sequential, the
 * parent's segment with `.index` appended.
 */
export function modulePath(nodeName: string): string | undefined {
  if (!nodeName.startsWith('/')) return undefined;
  const segments = nodeName.split('/').filter((s) => s.length > 0);
  segments.pop(); // the op itself
  if (segments.length === 0) return undefined;
  let path = segments[0] as string;
  let last = path;
  for (const segment of segments.slice(1)) {
    path = segment.startsWith(`${last}.`) ? path + segment.slice(last.length) : `${path}.${segment}`;
    last = segment;
  }
  return path;
}

function inScope(path: string | undefined, module: string): boolean {
  return path !== undefined && (path === module || path.startsWith(`${module}.`));
}

/** The output of module `module`: the last tensor made inside its scope and used outside it. */
function moduleOutput(graph: OnnxGraph, module: string, paths: Map<NodeProto, string | undefined>): Layer | undefined {
  let found: Layer | undefined;
  const outputs = new Set(graph.outputNames);
  for (const node of graph.nodes) {
    if (!inScope(paths.get(node), module)) continue;
    for (const tensor of node.output ?? []) {
      if (!tensor) continue;
      const usedOutside = outputs.has(tensor) || (graph.consumers.get(tensor) ?? []).some((c) => !inScope(paths.get(c), module));
      if (usedOutside) found = { name: module, tensor, opType: node.opType ?? '' };
    }
  }
  return found;
}

function nodePaths(graph: OnnxGraph): Map<NodeProto, string | undefined> {
  return new Map(graph.nodes.map((node) => [node, modulePath(node.name ?? '')]));
}

/** Every module path in the model with its output, outermost first, in graph order. */
export function listLayers(graph: OnnxGraph): Layer[] {
  const paths = nodePaths(graph);
  const modules: string[] = [];
  const seen = new Set<string>();
  for (const path of paths.values()) {
    if (!path) continue;
    const parts = path.split('.');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('.');
      if (!seen.has(prefix)) {
        seen.add(prefix);
        modules.push(prefix);
      }
    }
  }
  const layers = modules.map((m) => moduleOutput(graph, m, paths)).filter((l): l is Layer => l !== undefined);
  if (layers.length > 0) return layers;
  // No scopes (older exporters, tf2onnx): every node output is a candidate.
  return graph.nodes.flatMap((node) =>
    (node.output ?? []).filter(Boolean).map((tensor) => ({ name: tensor, tensor, opType: node.opType ?? '' })),
  );
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length] as number;
}

/**
 * The tensor for a layer named by tensor name, node name or torch module path. An unknown name fails
 * with the nearest valid names.
 */
export function resolveLayer(graph: OnnxGraph, spec: string): Layer {
  if (graph.producers.has(spec)) {
    return { name: spec, tensor: spec, opType: graph.producers.get(spec)?.node.opType ?? '' };
  }
  if (graph.inputNames.includes(spec)) return { name: spec, tensor: spec, opType: 'input' };
  const byNode = graph.nodes.find((n) => n.name === spec);
  if (byNode?.output?.[0]) return { name: spec, tensor: byNode.output[0], opType: byNode.opType ?? '' };
  const module = moduleOutput(graph, spec, nodePaths(graph));
  if (module) return module;
  const candidates = listLayers(graph).map((l) => l.name);
  const nearest = candidates
    .map((name) => ({ name, d: editDistance(spec.toLowerCase(), name.toLowerCase()) }))
    .sort((a, b) => a.d - b.d)
    .slice(0, 5)
    .map((c) => c.name);
  throw new CamerasError(
    `unknown layer '${spec}'; nearest valid names: ${nearest.join(', ')} (list all with 'cameras layers --model <model>')`,
  );
}

const SPATIAL_POOLING = new Set(['GlobalAveragePool', 'GlobalMaxPool', 'ReduceMean', 'AveragePool']);

/** Module names of a transformer block's first norm: torchvision's ViT (`ln_1`), Swin and timm (`norm1`), Hugging Face. */
const FIRST_BLOCK_NORM = /(^|\.)(ln_1|norm1|layernorm_before|ln1)$/;

/**
 * A transformer's default target: its last block's first LayerNorm, where pytorch-grad-cam points CAMs at ViTs and
 * Swins (the final block's output reaches the head through the class token alone, so its other tokens' gradients
 * are zero). Block norms are the LayerNormalizations fed by the residual stream (their input also feeds a residual
 * Add); the last one named as a first norm, else the second to last (each block has two).
 */
function transformerLayer(graph: OnnxGraph): Layer | undefined {
  const blockNorms = graph.nodes.filter(
    (node) => node.opType === 'LayerNormalization' && (graph.consumers.get(node.input?.[0] ?? '') ?? []).some((c) => c.opType === 'Add'),
  );
  if (blockNorms.length < 2) return undefined;
  const named = blockNorms.filter((node) => FIRST_BLOCK_NORM.test(modulePath(node.name ?? '') ?? ''));
  const norm = named.at(-1) ?? blockNorms.at(-2);
  const tensor = norm?.output?.[0];
  if (!norm || !tensor) return undefined;
  const path = modulePath(norm.name ?? '');
  const layer = path ? moduleOutput(graph, path, nodePaths(graph)) : undefined;
  return layer?.tensor === tensor ? layer : { name: tensor, tensor, opType: 'LayerNormalization' };
}

/**
 * The default target: a transformer's last block's first norm (see `transformerLayer`); else the input of the last
 * global pooling (or flatten) before the classifier head, named by its module when scopes exist. That is where CAM
 * methods look (torchvision's `layer4`).
 */
export function defaultLayer(graph: OnnxGraph): Layer {
  const transformer = transformerLayer(graph);
  if (transformer) return transformer;
  const reversed = [...graph.nodes].reverse();
  const pool = reversed.find((n) => SPATIAL_POOLING.has(n.opType ?? '')) ?? reversed.find((n) => n.opType === 'Flatten');
  const tensor = pool?.input?.[0];
  if (!tensor || !graph.producers.has(tensor)) {
    throw new CamerasError('cannot find a default target layer (no global pooling before the head, no transformer blocks); pass --layer');
  }
  const producer = graph.producers.get(tensor)?.node as NodeProto;
  const path = modulePath(producer.name ?? '');
  if (path) {
    const paths = nodePaths(graph);
    // The outermost module whose output is this very tensor.
    const parts = path.split('.');
    for (let i = 1; i <= parts.length; i++) {
      const layer = moduleOutput(graph, parts.slice(0, i).join('.'), paths);
      if (layer?.tensor === tensor) return layer;
    }
  }
  return { name: tensor, tensor, opType: producer.opType ?? '' };
}
