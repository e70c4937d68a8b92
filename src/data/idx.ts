// IDX files (LeCun's MNIST format, also Fashion-MNIST's): a big-endian header
// [0, 0, type, ndims] + ndims uint32 dims, then the elements in row-major order. Only unsigned
// bytes (type 0x08) occur in the datasets we read. Files may be gzipped, as distributed.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

/** Magic number of an IDX file of uint8 images [N, H, W]. */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** Magic number of an IDX file of uint8 labels [N]. */
export const IDX_LABELS_MAGIC = 0x00000801;

const UBYTE = 0x08;

export interface IdxArray {
  /** Sizes, outermost first: [N, H, W] for images, [N] for labels. */
  dims: number[];
  /** The elements in row-major order. */
  data: Uint8Array;
}

export class IdxFormatError extends Error {
  override name = "IdxFormatError";
}

const isGzip = (bytes: Uint8Array): boolean => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;

/**
 * Parses an IDX buffer, raw or gzipped. `expectedMagic` (IDX_IMAGES_MAGIC or IDX_LABELS_MAGIC)
 * checks that the file holds what the caller thinks; `name` goes into error messages.
 */
export function parseIdx(input: Uint8Array, { expectedMagic, name = "IDX data" }: { expectedMagic?: number; name?: string } = {}): IdxArray {
  let bytes = input;
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw new IdxFormatError(`${name}: corrupt gzip stream (${(err as Error).message})`);
    }
  }
  if (bytes.length < 4) throw new IdxFormatError(`${name}: ${bytes.length} bytes, too short for an IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const hex = (m: number): string => `0x${m.toString(16).padStart(8, "0")}`;
  if (bytes[0] !== 0 || bytes[1] !== 0) throw new IdxFormatError(`${name}: bad magic number ${hex(magic)}, not an IDX file`);
  if (bytes[2] !== UBYTE) throw new IdxFormatError(`${name}: element type 0x${bytes[2]!.toString(16)} is not supported (only unsigned bytes, 0x08)`);
  if (expectedMagic !== undefined && magic !== expectedMagic)
    throw new IdxFormatError(`${name}: magic number ${hex(magic)}, expected ${hex(expectedMagic)} (${expectedMagic & 0xff}-D uint8 data)`);
  const ndims = bytes[3]!;
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) throw new IdxFormatError(`${name}: truncated header (${bytes.length} bytes, ${ndims} dims need ${headerBytes})`);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const have = bytes.length - headerBytes;
  if (have !== count) {
    const what = have < count ? "truncated" : "trailing bytes";
    throw new IdxFormatError(`${name}: ${what}: dims [${dims.join(", ")}] need ${count} data bytes, found ${have}`);
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Reads and parses an IDX file (raw or .gz). */
export function readIdx(path: string, expectedMagic?: number): IdxArray {
  return parseIdx(readFileSync(path), { expectedMagic, name: path });
}
