import { CamerasError } from '../errors.js';

/** A dense float32 array with its shape (C order), the unit of exchange with .npy files and ONNX Runtime. */
export interface FloatArray {
  data: Float32Array;
  shape: number[];
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/**
 * Parses a NumPy .npy file: float32 or float64 (converted to float32), little-endian, C order.
 * Anything else fails with one line naming what was found.
 */
export function parseNpy(bytes: Uint8Array, source = 'array'): FloatArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new CamerasError(`${source} is not a .npy file; save it with numpy.save`);
  }
  const major = bytes[6] as number;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new CamerasError(`${source} has a malformed .npy header`);
  if (fortran === 'True') throw new CamerasError(`${source} is in Fortran order; save a C-ordered array (numpy.ascontiguousarray)`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = headerStart + headerLength;
  const itemSize = descr === '<f4' ? 4 : descr === '<f8' ? 8 : 0;
  if (itemSize === 0) throw new CamerasError(`${source} holds dtype ${descr}; save it as float32 (array.astype('float32'))`);
  if (bytes.length - offset < count * itemSize) {
    throw new CamerasError(`${source} is truncated: shape ${JSON.stringify(shape)} needs ${count * itemSize} bytes of data`);
  }
  const data = new Float32Array(count);
  const body = new DataView(bytes.buffer, bytes.byteOffset + offset, count * itemSize);
  if (itemSize === 4) for (let i = 0; i < count; i++) data[i] = body.getFloat32(4 * i, true);
  else for (let i = 0; i < count; i++) data[i] = body.getFloat64(8 * i, true);
  return { data, shape };
}

/** Serialises a float32 array as a version 1.0 .npy file. */
export function formatNpy(array: FloatArray): Uint8Array {
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  // The header, with its newline, pads the preamble to a multiple of 64 bytes.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = `${header.padEnd(total - 10 - 1, ' ')}\n`;
  const out = new Uint8Array(total + array.data.length * 4);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const body = new DataView(out.buffer, total);
  for (let i = 0; i < array.data.length; i++) body.setFloat32(4 * i, array.data[i] as number, true);
  return out;
}
