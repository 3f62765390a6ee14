import { HEADER_SIZE, HeaderFlags, MAX_CONFIG_SIZE, MEM_TABLE_MAX_REGIONS } from './constants.js';

/** Thrown for a payload whose size or contents break the protocol; the message is refused. */
export class ProtocolError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** One message as received: header fields, payload bytes and the descriptors that came with it. */
export interface Message {
  /** Request type ({@link Request}). */
  readonly request: number;
  /** Header flags ({@link HeaderFlags}). */
  readonly flags: number;
  /** The payload (exactly the header's size). */
  readonly payload: DataView;
  /** Descriptors received with the message; whoever handles the message owns them. */
  readonly fds: number[];
}

/** vring state description: an index and a number. */
export interface VringState {
  /** The ring's index within the device. */
  readonly index: number;
  /**
   * The number: a ring size (SET_VRING_NUM), a ring position (SET_VRING_BASE, GET_VRING_BASE) or an
   * enable flag (SET_VRING_ENABLE).
   */
  readonly num: number;
}

/** vring address description, in the front-end's user addresses (or IOVAs with an IOMMU). */
export interface VringAddr {
  /** The ring's index within the device. */
  readonly index: number;
  /** Vring flags: bit 0 is VHOST_VRING_F_LOG (log writes to the used ring at `log`). */
  readonly flags: number;
  /** Front-end address of the descriptor table (split) or descriptor ring (packed). */
  readonly desc: number;
  /** Front-end address of the used ring (split) or device event suppression area (packed). */
  readonly used: number;
  /** Front-end address of the available ring (split) or driver event suppression area (packed). */
  readonly avail: number;
  /** Guest-physical address of the used ring, for dirty-page logging when VHOST_VRING_F_LOG is set. */
  readonly log: number;
}

/** One memory region: guest-physical address, size, the front-end's user address, and the offset in its file. */
export interface MemoryRegionDesc {
  /** Guest-physical address where the region starts. */
  readonly guestAddress: number;
  /** Length of the region in bytes (never 0). */
  readonly size: number;
  /** The front-end's own virtual address of the region, which ring addresses are given in. */
  readonly userAddress: number;
  /** Where the region starts in the file descriptor sent with the message. */
  readonly mmapOffset: number;
}

/** Device configuration space access. */
export interface ConfigAccess {
  /** Byte offset into the device configuration space. */
  readonly offset: number;
  /** Number of bytes read or written. */
  readonly size: number;
  /** 0 (VHOST_SET_CONFIG_TYPE_FRONTEND) for a driver's access, 1 (..._MIGRATION) when migration restores it. */
  readonly flags: number;
  /** The bytes to write (SET_CONFIG) or the front-end's placeholder (GET_CONFIG): a view into the payload. */
  readonly data: Uint8Array;
}

function expectSize(payload: DataView, size: number, what: string): void {
  if (payload.byteLength !== size) throw new ProtocolError(`${what} payload is ${payload.byteLength} bytes, expected ${size}`);
}

/** A u64 field that must be a JavaScript-safe integer (addresses, sizes). */
function safeU64(view: DataView, offset: number, what: string): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`${what} 0x${value.toString(16)} is above 2^53`);
  return Number(value);
}

/** A u64 payload (features, status, the ring index of SET_VRING_KICK/CALL/ERR). */
export function decodeU64(payload: DataView): bigint {
  expectSize(payload, 8, 'u64');
  return payload.getBigUint64(0, true);
}

/** A vring state description. */
export function decodeVringState(payload: DataView): VringState {
  expectSize(payload, 8, 'vring state');
  return { index: payload.getUint32(0, true), num: payload.getUint32(4, true) };
}

/** A vring address description. */
export function decodeVringAddr(payload: DataView): VringAddr {
  expectSize(payload, 40, 'vring address');
  return {
    index: payload.getUint32(0, true),
    flags: payload.getUint32(4, true),
    desc: safeU64(payload, 8, 'descriptor address'),
    used: safeU64(payload, 16, 'used ring address'),
    avail: safeU64(payload, 24, 'available ring address'),
    log: Number(payload.getBigUint64(32, true) & 0x1fffffffffffffn),
  };
}

function decodeRegion(payload: DataView, at: number): MemoryRegionDesc {
  const region = {
    guestAddress: safeU64(payload, at, 'region guest address'),
    size: safeU64(payload, at + 8, 'region size'),
    userAddress: safeU64(payload, at + 16, 'region user address'),
    mmapOffset: safeU64(payload, at + 24, 'region mmap offset'),
  };
  if (region.size === 0) throw new ProtocolError('memory region of size 0');
  for (const [name, base] of [['guest', region.guestAddress], ['user', region.userAddress], ['mmap offset', region.mmapOffset]] as const) {
    if (base > Number.MAX_SAFE_INTEGER - region.size) throw new ProtocolError(`memory region's ${name} range passes 2^53`);
  }
  return region;
}

/** A memory regions description (SET_MEM_TABLE): at most {@link MEM_TABLE_MAX_REGIONS}. */
export function decodeMemoryTable(payload: DataView): MemoryRegionDesc[] {
  if (payload.byteLength < 8) throw new ProtocolError(`memory table payload is ${payload.byteLength} bytes`);
  const count = payload.getUint32(0, true);
  if (count === 0 || count > MEM_TABLE_MAX_REGIONS) throw new ProtocolError(`memory table has ${count} regions; 1 to ${MEM_TABLE_MAX_REGIONS} allowed`);
  if (payload.byteLength < 8 + 32 * count) throw new ProtocolError(`memory table of ${count} regions needs ${8 + 32 * count} bytes, got ${payload.byteLength}`);
  const regions: MemoryRegionDesc[] = [];
  for (let i = 0; i < count; i++) regions.push(decodeRegion(payload, 8 + 32 * i));
  return regions;
}

/** A single memory region description (ADD_MEM_REG, REM_MEM_REG). */
export function decodeSingleRegion(payload: DataView): MemoryRegionDesc {
  expectSize(payload, 40, 'single memory region');
  return decodeRegion(payload, 8);
}

/** A device configuration space access (GET_CONFIG, SET_CONFIG). */
export function decodeConfig(payload: DataView): ConfigAccess {
  if (payload.byteLength < 12) throw new ProtocolError(`config payload is ${payload.byteLength} bytes`);
  const offset = payload.getUint32(0, true);
  const size = payload.getUint32(4, true);
  const flags = payload.getUint32(8, true);
  if (size > MAX_CONFIG_SIZE || offset > MAX_CONFIG_SIZE - size) {
    throw new ProtocolError(`config access of ${size} bytes at ${offset} is outside the ${MAX_CONFIG_SIZE}-byte config space`);
  }
  if (payload.byteLength < 12 + size) throw new ProtocolError(`config payload of ${payload.byteLength} bytes is too short for ${size} bytes of data`);
  return { offset, size, flags, data: new Uint8Array(payload.buffer, payload.byteOffset + 12, size) };
}

/** Encodes a message: the header (version 1, plus `flags`) and `payload`. */
export function encodeMessage(request: number, flags: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, request, true);
  view.setUint32(4, HeaderFlags.VERSION | flags, true);
  view.setUint32(8, payload.length, true);
  bytes.set(payload, HEADER_SIZE);
  return bytes;
}

/** A u64 payload. */
export function u64Payload(value: bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
  return bytes;
}

/** A vring state payload. */
export function vringStatePayload(index: number, num: number): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, index, true);
  view.setUint32(4, num, true);
  return bytes;
}
