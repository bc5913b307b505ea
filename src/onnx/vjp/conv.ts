import { type AttributeInput, floatAttr, intAttr, intsAttr, stringAttr, tensorDims, tensorFloats } from '../graph.js';
import type { NodeProto, TensorProto } from '../proto.js';
import { floatScalarTensor, unsupported, type VjpContext } from './context.js';
import type { VjpRule } from './rule.js';

interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Leading pad per spatial axis: numbers, or an int64 tensor name when `auto_pad` makes it size-dependent. */
  padBegin: number[] | string;
  /** Trailing pads where they are static. */
  padEnd?: number[];
}

/** Kernel geometry of a Conv or pooling node, with `auto_pad` turned into explicit leading pads. */
function windowOf(ctx: VjpContext, node: NodeProto, kernel: number[], x: string, y: string): Window {
  const n = kernel.length;
  const strides = intsAttr(node, 'strides') ?? new Array(n).fill(1);
  const dilations = intsAttr(node, 'dilations') ?? new Array(n).fill(1);
  const autoPad = stringAttr(node, 'auto_pad', 'NOTSET');
  if (autoPad === 'NOTSET') {
    const pads = intsAttr(node, 'pads') ?? new Array(2 * n).fill(0);
    if (pads.some((p) => p < 0)) throw unsupported(node, 'negative pads');
    return { kernel, strides, dilations, padBegin: pads.slice(0, n), padEnd: pads.slice(n) };
  }
  if (autoPad === 'VALID') {
    return { kernel, strides, dilations, padBegin: new Array(n).fill(0), padEnd: new Array(n).fill(0) };
  }
  // SAME_UPPER / SAME_LOWER: total = max((out - 1) * s + (k - 1) * d + 1 - in, 0), split by the mode.
  const extent = kernel.map((k, i) => (k - 1) * (dilations[i] as number) + 1);
  if (strides.every((s) => s === 1)) {
    const begin = extent.map((e) => (autoPad === 'SAME_UPPER' ? Math.floor((e - 1) / 2) : Math.ceil((e - 1) / 2)));
    return { kernel, strides, dilations, padBegin: begin, padEnd: extent.map((e, i) => e - 1 - (begin[i] as number)) };
  }
  const inSize = ctx.dims(x, 2);
  const outSize = ctx.dims(y, 2);
  const needed = ctx.op('Sub', [
    ctx.op('Add', [ctx.op('Mul', [ctx.op('Sub', [outSize, ctx.int64([1])]), ctx.int64(strides)]), ctx.int64(extent)]),
    inSize,
  ]);
  const total = ctx.op('Max', [needed, ctx.int64(new Array(n).fill(0))]);
  const half = autoPad === 'SAME_UPPER' ? total : ctx.op('Add', [total, ctx.int64(new Array(n).fill(1))]);
  return { kernel, strides, dilations, padBegin: ctx.op('Div', [half, ctx.int64(new Array(n).fill(2))]) };
}

/**
 * The input gradient of a strided, dilated, grouped correlation with weight `w`: ConvTranspose on the
 * same weight with no padding and `output_padding = stride - 1` covers every input position, then a
 * slice from the leading pad takes exactly the input's extent.
 */
function transposedWindow(ctx: VjpContext, dy: string, w: string, x: string, win: Window, group: number): string {
  const n = win.kernel.length;
  const full = ctx.op('ConvTranspose', [dy, w], {
    strides: win.strides,
    dilations: win.dilations,
    group,
    kernel_shape: win.kernel,
    pads: new Array(2 * n).fill(0),
    output_padding: win.strides.map((s) => s - 1),
  });
  const starts = typeof win.padBegin === 'string' ? win.padBegin : ctx.int64(win.padBegin);
  const ends = ctx.op('Add', [starts, ctx.dims(x, 2)]);
  const axes = ctx.int64(Array.from({ length: n }, (_, i) => i + 2));
  return ctx.op('Slice', [full, starts, ends, axes]);
}

export const conv: VjpRule = (ctx, node, [dy], wanted) => {
  const [x, w] = node.input as [string, string];
  if (wanted[1] || wanted[2]) throw unsupported(node, 'its weights depend on the target (no weight gradients)');
  if (!wanted[0] || !dy) return [];
  const weight = ctx.graph.initializers.get(w);
  const kernel = intsAttr(node, 'kernel_shape') ?? (weight ? tensorDims(weight).slice(2) : undefined);
  if (!kernel) throw unsupported(node, 'kernel_shape is not given and the weight is not a constant');
  const win = windowOf(ctx, node, kernel, x, node.output?.[0] as string);
  const group = intAttr(node, 'group', 1);
  return [flippedConvolution(ctx, dy, weight, win, group) ?? transposedWindow(ctx, dy, w, x, win, group)];
};

/**
 * For stride 1 the input gradient is itself a correlation: the kernel flipped in space with input and
 * output channels swapped (per group), padded by d(k-1) - p. It gives the input's extent exactly and
 * runs on ONNX Runtime's fast Conv kernels, where ConvTranspose took 1.4x the forward time on ResNet-50.
 * Undefined where it does not apply (strides, size-dependent pads, weights computed at run time).
 */
function flippedConvolution(ctx: VjpContext, dy: string, weight: TensorProto | undefined, win: Window, group: number): string | undefined {
  if (!weight || typeof win.padBegin === 'string' || !win.padEnd || win.strides.some((s) => s !== 1)) return undefined;
  const values = tensorFloats(weight);
  const dims = tensorDims(weight);
  if (!values || dims.length < 3) return undefined;
  const extent = win.kernel.map((k, i) => (k - 1) * (win.dilations[i] as number));
  const padBegin = extent.map((e, i) => e - ((win.padBegin as number[])[i] as number));
  const padEnd = extent.map((e, i) => e - ((win.padEnd as number[])[i] as number));
  if ([...padBegin, ...padEnd].some((p) => p < 0)) return undefined;
  const [outChannels, inPerGroup, ...spatial] = dims as [number, number, ...number[]];
  const outPerGroup = outChannels / group;
  const area = spatial.reduce((a, b) => a * b, 1);
  const strides = spatial.map((_, i) => spatial.slice(i + 1).reduce((a, b) => a * b, 1));
  const flipped = new Float32Array(values.length);
  // W'[g * inPerGroup + i, o] = flip(W[g * outPerGroup + o, i]).
  for (let g = 0; g < group; g++) {
    for (let o = 0; o < outPerGroup; o++) {
      for (let i = 0; i < inPerGroup; i++) {
        const from = ((g * outPerGroup + o) * inPerGroup + i) * area;
        const to = ((g * inPerGroup + i) * outPerGroup + o) * area;
        for (let p = 0; p < area; p++) {
          // The mirrored position: every spatial index k becomes size - 1 - k.
          let q = 0;
          let rest = p;
          spatial.forEach((size, axis) => {
            const stride = strides[axis] as number;
            const k = Math.floor(rest / stride);
            rest -= k * stride;
            q += (size - 1 - k) * stride;
          });
          flipped[to + q] = values[from + p] as number;
        }
      }
    }
  }
  const kernel = ctx.floatTensor(flipped, [inPerGroup * group, outPerGroup, ...spatial]);
  return ctx.op('Conv', [dy, kernel], {
    kernel_shape: win.kernel,
    strides: win.strides,
    dilations: win.dilations,
    pads: [...padBegin, ...padEnd],
    group,
  });
}

export const convTranspose: VjpRule = (ctx, node, [dy], wanted) => {
  if (wanted[1] || wanted[2]) throw unsupported(node, 'its weights depend on the target (no weight gradients)');
  if (!wanted[0] || !dy) return [];
  if (stringAttr(node, 'auto_pad', 'NOTSET') !== 'NOTSET' || intsAttr(node, 'output_shape')) {
    throw unsupported(node, 'auto_pad and output_shape are not supported on ConvTranspose');
  }
  const w = node.input?.[1] as string;
  const weight = ctx.graph.initializers.get(w);
  const kernel = intsAttr(node, 'kernel_shape') ?? (weight ? tensorDims(weight).slice(2) : undefined);
  if (!kernel) throw unsupported(node, 'kernel_shape is not given and the weight is not a constant');
  const n = kernel.length;
  // The adjoint of a transposed convolution is the correlation with the same weight and geometry.
  return [
    ctx.op('Conv', [dy, w], {
      strides: intsAttr(node, 'strides') ?? new Array(n).fill(1),
      dilations: intsAttr(node, 'dilations') ?? new Array(n).fill(1),
      pads: intsAttr(node, 'pads') ?? new Array(2 * n).fill(0),
      group: intAttr(node, 'group', 1),
      kernel_shape: kernel,
    }),
  ];
};

export const maxPool: VjpRule = (ctx, node, [dy], wanted) => {
  if (!wanted[0] || !dy) return [];
  const x = node.input?.[0] as string;
  if (ctx.options.maxPoolIndices === false) return [maxPoolByComparison(ctx, node, x, dy)];
  if (intAttr(node, 'storage_order', 0) !== 0) throw unsupported(node, 'storage_order=1');
  // Ask the forward node for its argmax indices (flat over N*C*H*W), then scatter-add through them:
  // overlapping windows can pick the same element more than once.
  const outputs = node.output as string[];
  if (!outputs[1]) outputs[1] = ctx.graph.freshName(`${node.name ?? 'MaxPool'}_indices`);
  const indices = outputs[1];
  ctx.requiredOpset = Math.max(ctx.requiredOpset, 16);
  const size = ctx.op('Reshape', [ctx.op('Size', [x]), ctx.int64([1])]);
  const zeros = ctx.op('ConstantOfShape', [size], { value: floatScalarTensor(0) });
  const scattered = ctx.op(
    'ScatterElements',
    [zeros, ctx.op('Reshape', [indices, ctx.int64([-1])]), ctx.op('Reshape', [dy, ctx.int64([-1])])],
    { axis: 0, reduction: 'add' },
  );
  return [ctx.op('Reshape', [scattered, ctx.shape(x)])];
};

/**
 * MaxPool's input gradient without its Indices output. For each kernel offset o (row-major) let
 * x_o[p] = xpad[p * s + o * d] be the element under offset o of window p (xpad: x padded with the lowest float),
 * hit_o = (x_o == y) and first_o = hit_o and not (hit_o' for any o' < o); then
 * dx = crop(sum_o place_o(dy * first_o)), where place_o puts window p's value at p * s + o * d.
 * Ties go to the first maximum of the window, as ONNX Runtime's and PyTorch's indices do.
 */
function maxPoolByComparison(ctx: VjpContext, node: NodeProto, x: string, dy: string): string {
  const kernel = intsAttr(node, 'kernel_shape');
  if (!kernel) throw unsupported(node, 'kernel_shape is not given');
  const y = node.output?.[0] as string;
  const n = kernel.length;
  const win = windowOf(ctx, node, kernel, x, y);
  const axes = ctx.int64(Array.from({ length: n }, (_, i) => i + 2));
  // Every channel as its own image, so one ConvTranspose with K = prod(kernel) channels places all offsets.
  const outSize = ctx.dims(y, 2);
  const perChannel = (t: string, size: string) => ctx.op('Reshape', [t, ctx.op('Concat', [ctx.int64([-1, 1]), size], { axis: 0 })]);
  const yc = perChannel(y, outSize);
  // Trailing pad: enough for every window of y to be sliced whole (ceil_mode and SAME may need up to s - 1 more).
  const extent = kernel.map((k, i) => (k - 1) * (win.dilations[i] as number) + 1);
  const padEnd = extent.map((e, i) => (win.padEnd ? (win.padEnd[i] as number) : e - 1) + (win.strides[i] as number) - 1);
  const zeros = new Array(2).fill(0);
  const pads =
    typeof win.padBegin === 'string'
      ? ctx.op('Concat', [ctx.int64(zeros), win.padBegin, ctx.int64([...zeros, ...padEnd])], { axis: 0 })
      : ctx.int64([...zeros, ...win.padBegin, ...zeros, ...padEnd]);
  // The lowest float rather than -inf: WGSL lets GPU compilers assume no infinities.
  const xpad = ctx.op('Pad', [perChannel(x, ctx.dims(x, 2)), pads, ctx.float(-3.4028234663852886e38)], { mode: 'constant' });
  // Offset o's slice ends after element (out - 1) * s + o * d.
  const span = ctx.op('Mul', [outSize, ctx.int64(win.strides)]);
  const steps = ctx.int64(win.strides);
  let offsets: number[][] = [[]];
  for (const k of kernel) offsets = offsets.flatMap((o) => Array.from({ length: k }, (_, i) => [...o, i]));
  let rest = perChannel(dy, outSize);
  const zero = ctx.float(0);
  const parts = offsets.map((o, index) => {
    const start = o.map((i, axis) => i * (win.dilations[axis] as number));
    const end = ctx.op('Add', [span, ctx.int64(start.map((b, axis) => b + 1 - (win.strides[axis] as number)))]);
    const hit = ctx.op('Equal', [ctx.op('Slice', [xpad, ctx.int64(start), end, axes, steps]), yc]);
    const part = ctx.op('Where', [hit, rest, zero]);
    if (index < offsets.length - 1) rest = ctx.op('Where', [hit, zero, rest]);
    return part;
  });
  const volume = offsets.length;
  const oneHot = new Float32Array(volume * volume);
  for (let k = 0; k < volume; k++) oneHot[k * volume + k] = 1;
  const weight = ctx.floatTensor(oneHot, [volume, 1, ...kernel]);
  const stacked = volume === 1 ? (parts[0] as string) : ctx.op('Concat', parts, { axis: 1 });
  return ctx.op('Reshape', [transposedWindow(ctx, stacked, weight, x, win, 1), ctx.shape(x)]);
}

export const averagePool: VjpRule = (ctx, node, [dy], wanted) => {
  if (!wanted[0] || !dy) return [];
  const x = node.input?.[0] as string;
  const kernel = intsAttr(node, 'kernel_shape') as number[];
  if (intAttr(node, 'ceil_mode', 0) !== 0) throw unsupported(node, 'ceil_mode=1');
  const win = windowOf(ctx, node, kernel, x, node.output?.[0] as string);
  const volume = kernel.reduce((a, b) => a * b, 1);
  const padded = !win.padEnd || [...(win.padBegin as number[]), ...win.padEnd].some((p) => p > 0);
  // Treat every channel as its own image: one ConvTranspose with a ones kernel serves all channels.
  const perChannel = ctx.op('Concat', [ctx.int64([-1, 1]), ctx.dims(dy, 2)], { axis: 0 });
  let scaled = ctx.op('Reshape', [dy, perChannel]);
  const ones = ctx.floatTensor(new Float32Array(volume).fill(1), [1, 1, ...kernel]);
  if (padded && intAttr(node, 'count_include_pad', 0) === 0) {
    // The divisor is the number of real (unpadded) elements in each window: count them with a Conv on ones.
    const plane = ctx.op('Concat', [ctx.int64([1, 1]), ctx.dims(x, 2)], { axis: 0 });
    const onesPlane = ctx.op('ConstantOfShape', [plane], { value: floatScalarTensor(1) });
    if (!win.padEnd) throw unsupported(node, 'auto_pad SAME with count_include_pad=0 and strides > 1');
    const explicitPads = [...(win.padBegin as number[]), ...win.padEnd];
    const counts = ctx.op('Conv', [onesPlane, ones], {
      strides: win.strides,
      dilations: win.dilations,
      pads: explicitPads,
      kernel_shape: kernel,
    });
    scaled = ctx.op('Div', [scaled, counts]);
  } else {
    scaled = ctx.op('Mul', [scaled, ctx.float(1 / volume)]);
  }
  const xPerChannel = ctx.op('Reshape', [x, ctx.op('Concat', [ctx.int64([-1, 1]), ctx.dims(x, 2)], { axis: 0 })]);
  const dxPerChannel = transposedWindow(ctx, scaled, ones, xPerChannel, win, 1);
  return [ctx.op('Reshape', [dxPerChannel, ctx.shape(x)])];
};

export const globalAveragePool: VjpRule = (ctx, node, [dy], wanted) => {
  if (!wanted[0] || !dy) return [];
  const x = node.input?.[0] as string;
  const y = node.output?.[0] as string;
  const count = ctx.op('Cast', [ctx.op('Div', [ctx.op('Size', [x]), ctx.op('Size', [y])])], { to: 1 });
  return [ctx.op('Div', [ctx.op('Expand', [dy, ctx.shape(x)]), count])];
};

/** `y = (x - mean) / sqrt(var + eps) * scale + bias` in inference mode: a per-channel scale. */
export const batchNormalization: VjpRule = (ctx, node, [dy], wanted) => {
  if (wanted.slice(1).some(Boolean)) throw unsupported(node, 'its statistics depend on the target');
  if (!wanted[0] || !dy) return [];
  if (intAttr(node, 'training_mode', 0) !== 0) throw unsupported(node, 'training_mode=1');
  const [x, scale, , , variance] = node.input as string[];
  const epsilon = floatAttr(node, 'epsilon', 1e-5);
  const rank = ctx.rank(x as string, node);
  const scaleValues = ctx.graph.constantValues(scale as string);
  const varValues = ctx.graph.constantValues(variance as string);
  let factor: string;
  const broadcastDims = (c: number) => [c, ...new Array(Math.max(rank - 2, 0)).fill(1)];
  if (scaleValues && varValues) {
    const values = Float32Array.from(scaleValues, (s, i) => s / Math.sqrt((varValues[i] as number) + epsilon));
    factor = ctx.floatTensor(values, broadcastDims(values.length));
  } else {
    const raw = ctx.op('Div', [scale as string, ctx.op('Sqrt', [ctx.op('Add', [variance as string, ctx.float(epsilon)])])]);
    factor = ctx.op('Reshape', [raw, ctx.int64(broadcastDims(-1))]);
  }
  return [ctx.op('Mul', [dy, factor])];
};

/**
 * Resize over height and width (any mode: nearest, linear, cubic, with antialias) is linear in x and separable:
 * `y = R_h x R_w^T`, so `dx = R_h^T dy R_w`. Each `R` is found at run time by resizing an identity matrix with the
 * node's own attributes and sizes (or scales), so the adjoint follows the forward's coordinate rule exactly.
 */
export const resize: VjpRule = (ctx, node, [dy], wanted) => {
  if (wanted.slice(1).some(Boolean)) throw unsupported(node, 'its sizes depend on the target');
  if (!wanted[0] || !dy) return [];
  const [x, , scales, sizes] = (node.input ?? []) as string[];
  if (ctx.rank(x as string, node) !== 4) throw unsupported(node, 'only a [batch, channels, height, width] resize is differentiated');
  if (stringAttr(node, 'coordinate_transformation_mode', 'half_pixel') === 'tf_crop_and_resize')
    throw unsupported(node, 'tf_crop_and_resize');
  if (stringAttr(node, 'keep_aspect_ratio_policy', 'stretch') !== 'stretch') throw unsupported(node, 'keep_aspect_ratio_policy');
  const axes = intsAttr(node, 'axes');
  if (axes && !(axes.length === 2 && axes.every((a, i) => a === i + 2 || a === i - 2)))
    throw unsupported(node, `it resizes axes ${axes.join(', ')} (only height and width are differentiated)`);
  const offset = axes ? 2 : 0;
  const attributes: Record<string, AttributeInput> = {};
  for (const name of ['mode', 'coordinate_transformation_mode', 'nearest_mode'])
    if (node.attribute?.some((a) => a.name === name)) attributes[name] = stringAttr(node, name, '');
  for (const name of ['cubic_coeff_a'])
    if (node.attribute?.some((a) => a.name === name)) attributes[name] = { float: floatAttr(node, name, 0) };
  for (const name of ['exclude_outside', 'antialias'])
    if (node.attribute?.some((a) => a.name === name)) attributes[name] = intAttr(node, name, 0);
  const bySizes = sizes !== undefined && sizes !== '';
  // R_axis^T as an [in, out] matrix: the identity's rows [in, 1, 1, in] resized along their last axis.
  const matrix = (axis: number): string => {
    const n = ctx.dims(x as string, axis, axis + 1);
    const eye = ctx.op('EyeLike', [ctx.op('ConstantOfShape', [ctx.op('Concat', [n, n], { axis: 0 })], { value: floatScalarTensor(0) })]);
    const rows = ctx.op('Reshape', [eye, ctx.op('Concat', [n, ctx.int64([1, 1]), n], { axis: 0 })]);
    const at = [ctx.int64([axis - offset]), ctx.int64([axis - offset + 1])];
    const resized = bySizes
      ? ctx.op(
          'Resize',
          [rows, '', '', ctx.op('Concat', [n, ctx.int64([1, 1]), ctx.op('Slice', [sizes as string, ...at])], { axis: 0 })],
          attributes,
        )
      : ctx.op(
          'Resize',
          [rows, '', ctx.op('Concat', [ctx.floatTensor([1, 1, 1], [3]), ctx.op('Slice', [scales as string, ...at])], { axis: 0 })],
          attributes,
        );
    return ctx.op('Reshape', [resized, ctx.op('Concat', [n, ctx.int64([-1])], { axis: 0 })]);
  };
  const rows = ctx.op('MatMul', [matrix(2), dy]);
  return [ctx.op('MatMul', [rows, ctx.op('Transpose', [matrix(3)], { perm: [1, 0] })])];
};
