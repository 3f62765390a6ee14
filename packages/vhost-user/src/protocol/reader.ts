import { HEADER_SIZE } from './constants.js';
import { ProtocolError, type Message } from './message.js';
import { closeQuietly } from '../sys/libc.js';

/** Where the reader pulls bytes from: a non-blocking socket that also yields SCM_RIGHTS descriptors. */
export interface ByteSource {
  /** Reads at most `length` bytes into `into` at `offset`; length -1: nothing now, 0: closed. */
  receive(into: Uint8Array, offset: number, length: number): { length: number; fds: number[]; truncated: boolean };
}

/** The largest payload any request has (a full memory table is 264 bytes, a config access 268). */
export const MAX_PAYLOAD = 4096;

/**
 * Reassembles messages from a stream socket. It reads the header and then
 * exactly the payload, never past the end of a message, so the descriptors the
 * kernel hands over always belong to the message being assembled (the sender
 * attaches them to the message's first byte).
 */
export class MessageReader {
  private readonly header = new Uint8Array(HEADER_SIZE);
  private readonly headerView = new DataView(this.header.buffer);
  private have = 0;
  private payload: Uint8Array | undefined;
  private fds: number[] = [];

  /**
   * The next complete message, undefined when more bytes must arrive first, or
   * null when the peer closed the connection. Throws a {@link ProtocolError} for
   * a malformed header (the connection cannot be resynchronised after it).
   */
  next(source: ByteSource): Message | undefined | null {
    for (;;) {
      const payload = this.payload;
      if (payload !== undefined && this.have === payload.length) {
        const message: Message = {
          request: this.headerView.getUint32(0, true),
          flags: this.headerView.getUint32(4, true),
          payload: new DataView(payload.buffer, payload.byteOffset, payload.byteLength),
          fds: this.fds,
        };
        this.payload = undefined;
        this.have = 0;
        this.fds = [];
        return message;
      }
      const into = payload ?? this.header;
      const got = source.receive(into, this.have, into.length - this.have);
      this.fds.push(...got.fds);
      if (got.truncated) throw new ProtocolError('a message carried more file descriptors than any request may');
      if (got.length === 0) {
        this.discard();
        return null;
      }
      if (got.length < 0) return undefined;
      this.have += got.length;
      if (payload === undefined && this.have === HEADER_SIZE) {
        const size = this.headerView.getUint32(8, true);
        if (size > MAX_PAYLOAD) throw new ProtocolError(`message payload of ${size} bytes exceeds ${MAX_PAYLOAD}`);
        this.payload = new Uint8Array(size);
        this.have = 0;
      }
    }
  }

  /** Closes descriptors of a message that will never be completed. */
  discard(): void {
    for (const fd of this.fds) closeQuietly(fd);
    this.fds = [];
  }
}
