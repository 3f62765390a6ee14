import { VIRTIO_F_VERSION_1, hasFeature } from '@virtio-ts/virtqueue';
import type { BlockBackend } from './backend.js';
import { BlkConfigSpace } from './config.js';
import {
  SECTOR_SIZE,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_LIFETIME,
  VIRTIO_BLK_F_SECURE_ERASE,
  VIRTIO_BLK_F_WRITE_ZEROES,
} from './constants.js';
import { FlushSequencer } from './flush-sequencer.js';
import type { BlockLifetime, ResolvedBlkOptions, ResolvedRangeLimits } from './options.js';
import type { DiskState } from './request.js';

/**
 * The disk as the current driver negotiated it: configuration space, cache
 * mode and which commands are enabled. Reset to the offered state by {@link reset}.
 * @internal
 */
export class Disk implements DiskState {
  /** @inheritDoc */
  readonly backend: BlockBackend;
  /** @inheritDoc */
  readonly flusher: FlushSequencer;
  /** @inheritDoc */
  readonly serial: Uint8Array;
  /** @inheritDoc */
  readonly readOnly: boolean;
  /** @inheritDoc */
  readonly blockSectors: number;
  /** The configuration space the driver reads, kept up to date with capacity and cache mode. */
  readonly config: BlkConfigSpace;
  /** @inheritDoc */
  flushEnabled = false;
  /** CONFIG_WCE was negotiated: `writeback` decides the cache mode. Kept as a boolean since every write asks. */
  private configWce = false;
  /** @inheritDoc */
  discard: ResolvedRangeLimits | undefined;
  /** @inheritDoc */
  writeZeroes: ResolvedRangeLimits | undefined;
  /** @inheritDoc */
  secureErase: ResolvedRangeLimits | undefined;
  /** @inheritDoc */
  lifetime: (() => BlockLifetime) | undefined;
  /** @inheritDoc */
  legacy = false;
  /** Negotiated features; undefined until FEATURES_OK (or, for a legacy driver, DRIVER_OK). */
  features: bigint | undefined;
  private readonly options: ResolvedBlkOptions;

  /** Builds the disk in its offered state, with capacity taken from the backend's current size. */
  constructor(options: ResolvedBlkOptions) {
    this.options = options;
    this.backend = options.backend;
    this.serial = options.serial;
    this.readOnly = options.readOnly;
    this.blockSectors = options.blockSize / SECTOR_SIZE;
    this.flusher = new FlushSequencer(() => this.backend.flush());
    this.config = new BlkConfigSpace(options);
    this.config.capacity = this.backendSectors();
    this.config.writeback = options.writeback;
  }

  /**
   * Read from the configuration space, where a resize updates it.
   * @inheritDoc
   */
  get capacity(): number {
    return this.config.capacity;
  }

  /** The backend's size in whole sectors. */
  backendSectors(): number {
    return Math.floor(this.backend.size / SECTOR_SIZE);
  }

  /**
   * Completed writes must be durable before they are reported: spec 5.2.6.2
   * case 1 (FLUSH offered, neither FLUSH nor CONFIG_WCE negotiated) and case 2
   * (CONFIG_WCE negotiated and `writeback` 0).
   */
  writethrough(): boolean {
    if (this.configWce) return !this.config.writeback;
    return this.options.flush && !this.flushEnabled;
  }

  /** Whether the driver may write `writeback` now (spec 5.2.5: CONFIG_WCE; 5.2.5.3: legacy drivers before negotiation). */
  writebackWritable(): boolean {
    return this.features === undefined ? this.options.configWce : hasFeature(this.features, VIRTIO_BLK_F_CONFIG_WCE);
  }

  /** Enables the commands the driver accepted. spec 5.2.5.2: CONFIG_WCE without FLUSH starts write-through. */
  negotiate(features: bigint): void {
    const o = this.options;
    this.features = features;
    this.legacy = !hasFeature(features, VIRTIO_F_VERSION_1);
    this.flushEnabled = hasFeature(features, VIRTIO_BLK_F_FLUSH);
    this.configWce = hasFeature(features, VIRTIO_BLK_F_CONFIG_WCE);
    this.discard = hasFeature(features, VIRTIO_BLK_F_DISCARD) ? o.discard : undefined;
    this.writeZeroes = hasFeature(features, VIRTIO_BLK_F_WRITE_ZEROES) ? o.writeZeroes : undefined;
    this.secureErase = hasFeature(features, VIRTIO_BLK_F_SECURE_ERASE) ? o.secureErase : undefined;
    this.lifetime = hasFeature(features, VIRTIO_BLK_F_LIFETIME) ? o.lifetime : undefined;
    if (this.configWce && !this.flushEnabled) this.config.writeback = false;
  }

  /** Forgets the driver: no command enabled, the cache mode back to its initial value. */
  reset(): void {
    this.features = undefined;
    this.legacy = false;
    this.flushEnabled = false;
    this.configWce = false;
    this.discard = undefined;
    this.writeZeroes = undefined;
    this.secureErase = undefined;
    this.lifetime = undefined;
    this.config.writeback = this.options.writeback;
  }
}
