import { CamerasError } from '../errors.js';

/** A named weight tensor, converted to float32. */
export interface Weight {
  shape: number[];
  data: Float32Array;
}

export type StateDict = Map<string, Weight>;

/** An IEEE 754 half-precision value from its 16 bits. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Integer dtypes: buffers such as step counters, skipped (no layer reads them). */
const INTEGER_DTYPES = new Set(['I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL']);

/**
 * Parses a .safetensors file (an 8-byte little-endian header length, a JSON header of
 * `{name: {dtype, shape, data_offsets}}`, then raw little-endian data). F64, F32, F16 and BF16 tensors become
 * float32; integer buffers are skipped; other dtypes are refused by name.
 */
export function parseSafetensors(bytes: Uint8Array, source = 'weights'): StateDict {
  if (bytes.length < 8) throw new CamerasError(`${source} is not a .safetensors file (too short)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength <= 0 || 8 + headerLength > bytes.length)
    throw new CamerasError(`${source} is not a .safetensors file (bad header length)`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    throw new CamerasError(`${source} is not a .safetensors file (its header is not JSON)`);
  }
  const base = 8 + headerLength;
  const weights: StateDict = new Map();
  for (const [name, entry] of Object.entries(header)) {
    // Integer buffers (BatchNorm's num_batches_tracked, kept as I64 by torch's state_dict) are no weights.
    if (name === '__metadata__' || INTEGER_DTYPES.has(entry.dtype)) continue;
    const [start, end] = entry.data_offsets;
    const count = entry.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(count);
    const at = base + start;
    if (base + end > bytes.length) throw new CamerasError(`${source} is truncated at tensor ${name}`);
    switch (entry.dtype) {
      case 'F32':
        for (let i = 0; i < count; i++) data[i] = view.getFloat32(at + 4 * i, true);
        break;
      case 'F16':
        for (let i = 0; i < count; i++) data[i] = halfToFloat(view.getUint16(at + 2 * i, true));
        break;
      case 'F64':
        for (let i = 0; i < count; i++) data[i] = view.getFloat64(at + 8 * i, true);
        break;
      case 'BF16':
        for (let i = 0; i < count; i++) {
          const scratch = new DataView(new ArrayBuffer(4));
          scratch.setUint32(0, view.getUint16(at + 2 * i, true) << 16, true);
          data[i] = scratch.getFloat32(0, true);
        }
        break;
      default:
        throw new CamerasError(`${source}: tensor ${name} has dtype ${entry.dtype}; only F64, F32, F16 and BF16 weights are supported`);
    }
    weights.set(name, { shape: entry.shape, data });
  }
  return weights;
}
