import { DeviceStatus, legacySplitRingLayout, type GuestMemory, type QueueConfig } from '@virtio-ts/virtqueue';
import type { GuestAllocator } from '@virtio-ts/virtqueue/testing';
import type { DriverTransport, InterruptCause } from '../transport.js';

/**
 * The fields of the SCSW and the sense data that TEST SUBCHANNEL stores, as a
 * virtio-ccw transport reports them (structurally the same as
 * `@virtio-ts/transport-ccw`'s InterruptionResponse).
 */
export interface CcwInterruptionResponse {
  /** The interruption parameter of the channel program, or 0 for unsolicited status. */
  readonly intparm: number;
  /** SCSW status-control bits. */
  readonly statusControl: number;
  /** The address of the last CCW executed plus 8. */
  readonly ccwAddress: number;
  /** SCSW device status. */
  readonly deviceStatus: number;
  /** SCSW subchannel status. */
  readonly subchannelStatus: number;
  /** Residual count of the last CCW. */
  readonly residualCount: number;
  /** Sense data with a unit check. */
  readonly sense: Uint8Array | undefined;
}

/** A subchannel as the guest reaches it through the channel subsystem's I/O instructions. */
export interface CcwSubchannel {
  /** MODIFY SUBCHANNEL: sets the enabled bit. */
  setEnabled(enabled: boolean): void;
  /** START SUBCHANNEL with the format-1 channel program at `channelProgram`; returns the condition code. */
  startSubchannel(channelProgram: number, intparm: number): number;
  /** TEST SUBCHANNEL: the pending status (cleared), or undefined when none is pending. */
  testSubchannel(): CcwInterruptionResponse | undefined;
}

/** The general registers of a DIAGNOSE 0x500 hypercall. */
export interface CcwHypercallRegisters {
  /** Subcode (3: virtio-ccw notification). */
  readonly gpr1: bigint;
  /** Subchannel ID word. */
  readonly gpr2: bigint;
  /** Notification data. */
  readonly gpr3: bigint;
  /** Host cookie from the previous notification. */
  readonly gpr4: bigint;
}

/** Options for {@link CcwDriverTransport}. */
export interface CcwDriverTransportOptions {
  /**
   * Where the driver puts its channel programs, their data and its indicators
   * (under 400 bytes). Must lie below 2 GiB: CCW data addresses are 31 bits.
   */
  readonly allocator: GuestAllocator;
  /** The subchannel ID word, passed in GPR 2 of DIAGNOSE 0x500. */
  readonly subchannelId: number;
  /** Executes DIAGNOSE 0x500 with these registers; returns the new GPR 2, or undefined if the hypercall was refused. */
  readonly hypercall: (registers: CcwHypercallRegisters) => bigint | undefined;
  /** The highest transport revision to try; the driver falls back on command reject (spec 4.3.2.1.2). Defaults to 2. */
  readonly revision?: number;
  /** Try two-stage (adapter) queue indicators before classic ones, as Linux does. Defaults to true. */
  readonly adapterInterrupts?: boolean;
  /**
   * Be a transitional driver, as Linux's virtio_ccw is: after revision 1 try
   * revision 0, and if the device rejects every revision, drive it as
   * revision 0 without one (spec 4.3.2.1.3). Revision 0 is the legacy
   * interface: 32 feature bits, no FEATURES_OK, queues in the legacy layout
   * ({@link CcwDriverTransport.LEGACY_QUEUE_ALIGN}), and rings and
   * configuration fields in the guest's byte order, big-endian on s390 (the
   * caller's rings then use SplitRingDriver's big-endian mode). Defaults to
   * false: a non-transitional driver, which gives up below revision 1.
   */
  readonly legacy?: boolean;
}

/** The guest's copy of the virtio-ccw command codes (spec 4.3.1.1). */
const Command = {
  SENSE_ID: 0xe4,
  SET_VQ: 0x13,
  VDEV_RESET: 0x33,
  SET_IND: 0x43,
  SET_CONF_IND: 0x53,
  SET_IND_ADAPTER: 0x73,
  READ_FEAT: 0x12,
  WRITE_FEAT: 0x11,
  READ_CONF: 0x22,
  WRITE_CONF: 0x21,
  WRITE_STATUS: 0x31,
  READ_VQ_CONF: 0x32,
  SET_VIRTIO_REV: 0x83,
  READ_STATUS: 0x72,
} as const;

const CCW_FLAG_SLI = 0x20;
const DEV_STAT_CHN_END = 0x08;
const DEV_STAT_DEV_END = 0x04;
const DEV_STAT_UNIT_CHECK = 0x02;
const SCHN_STAT_INCORR_LEN = 0x40;
const SNS0_CMD_REJECT = 0x80;
const CC_STARTED = 0;
const CC_STATUS_PENDING = 1;
const VIRTIO_CCW_CU_TYPE = 0x3832;
const KVM_S390_VIRTIO_CCW_NOTIFY = 3n;
/** The I/O interruption subclass the driver asks adapter interruptions on (Linux uses its I/O subchannel ISC, 3). */
const ADAPTER_ISC = 3;
/** Where this driver's queue bits start in its indicator area: not at a byte boundary, to exercise bit numbering. */
const ADAPTER_FIRST_BIT = 5;
/** The largest configuration space the driver handles, and the size of its data area (Linux's VIRTIO_CCW_CONFIG_SIZE). */
const DATA_SIZE = 256;
/** Queues probed with READ_VQ_CONF (QEMU's VIRTIO_QUEUE_MAX). */
const MAX_QUEUES = 1024;
const WORD_LIMIT = 2 ** 31;
/** The legacy vq_info_block: be64 queue, be32 align, be16 index, be16 num. */
const LEGACY_VQ_INFO_SIZE = 16;

type Outcome = 'ok' | 'rejected';

/**
 * The guest side of virtio over channel I/O (spec 4.3), as Linux's virtio_ccw
 * drives it: SENSE ID, SET_VIRTIO_REV from the highest revision down, feature
 * words through READ_FEAT/WRITE_FEAT, SET_VQ with the revision 1 vq_info_block
 * (and, with the `legacy` option, revision 0 and its legacy vq_info_block),
 * adapter indicators with a fallback to classic ones, a configuration change
 * indicator, WRITE_STATUS/READ_STATUS, and notifications through DIAGNOSE
 * 0x500. Each operation is a one-CCW channel program in guest memory started on
 * the subchannel. Interruptions reach the driver through {@link ioInterrupt} and
 * {@link adapterInterrupt}, which the channel subsystem calls.
 *
 * A command reject (the device refused the command) is reported through the
 * operation's result, as the spec lets a device refuse; any other error status
 * means a broken transport and throws.
 */
export class CcwDriverTransport implements DriverTransport {
  /** The alignment of a legacy queue's used ring (Linux's KVM_VIRTIO_CCW_RING_ALIGN); see legacySplitRingLayout. */
  static readonly LEGACY_QUEUE_ALIGN = 4096;
  /** 'ccw', for test titles. */
  readonly name = 'ccw';
  /** Guest memory, as the driver sees it. */
  readonly memory: GuestMemory;
  /** The revision the device accepted; 0 (legacy) also when it accepted no SET_VIRTIO_REV at all. */
  readonly revision: number;
  /** The status of the last channel program. */
  lastResponse: CcwInterruptionResponse | undefined;
  private readonly subchannel: CcwSubchannel;
  private readonly options: CcwDriverTransportOptions;
  private readonly ccwAddress: number;
  private readonly dataAddress: number;
  private readonly queueIndicators: number;
  private readonly configIndicators: number;
  private readonly summaryIndicator: number;
  private adapterArea: number | undefined;
  private readonly controlUnitModel: number;
  private readonly block = new DataView(new ArrayBuffer(32));
  private readonly ccw = new DataView(new ArrayBuffer(8));
  private handler: (cause: InterruptCause) => void = () => undefined;
  private indicators: 'classic' | 'adapter' | undefined;
  private tryAdapter: boolean;
  private statusCache = 0;
  private cookie = 0n;
  private queues: number | undefined;
  private running = false;
  private adapterDeferred = false;
  /** The channel program whose status comes with a later I/O interruption. */
  private late: { readonly command: number; readonly intparm: number; readonly resolve: (outcome: Outcome) => void; readonly reject: (error: unknown) => void } | undefined;
  private config: Uint8Array = new Uint8Array(0);
  private generation = 0;

  /**
   * Enables the subchannel, checks SENSE ID for the virtio-ccw control unit
   * type (spec 4.3.1) and negotiates the revision. Throws if the subchannel is
   * not a virtio-ccw device or accepts no revision this driver knows.
   */
  constructor(memory: GuestMemory, subchannel: CcwSubchannel, options: CcwDriverTransportOptions) {
    this.memory = memory;
    this.subchannel = subchannel;
    this.options = options;
    const alloc = options.allocator;
    this.ccwAddress = below2G(alloc.alloc(8, 8), 8);
    this.dataAddress = below2G(alloc.alloc(DATA_SIZE, 8), DATA_SIZE);
    this.queueIndicators = below2G(alloc.alloc(8, 8), 8);
    this.configIndicators = below2G(alloc.alloc(8, 8), 8);
    this.summaryIndicator = below2G(alloc.alloc(1, 1), 1);
    this.tryAdapter = options.adapterInterrupts ?? true;
    subchannel.setEnabled(true);
    this.memory.fill(this.dataAddress, 4);
    this.expect(this.command(Command.SENSE_ID, 4, CCW_FLAG_SLI), 'SENSE ID');
    const senseId = this.data(4);
    const cuType = (senseId[1] as number) * 256 + (senseId[2] as number);
    if (senseId[0] !== 0xff || cuType !== VIRTIO_CCW_CU_TYPE) {
      throw new Error(`subchannel control unit type is 0x${cuType.toString(16)}, not virtio-ccw's 0x3832 (spec 4.3.1)`);
    }
    this.controlUnitModel = senseId[3] as number;
    this.revision = this.negotiateRevision(options.revision ?? 2, options.legacy ?? false);
  }

  /** The feature words the revision has: one (32 bits) for the legacy interface (spec 2.2.3), else four. */
  private get featureWords(): number {
    return this.revision === 0 ? 1 : 4;
  }

  /** Which queue indicators are registered with the device, if any. */
  get indicatorMode(): 'classic' | 'adapter' | undefined {
    return this.indicators;
  }

  /** The control unit model SENSE ID reported: the device ID (spec 4.3.1). */
  deviceId(): number {
    return this.controlUnitModel;
  }

  /**
   * VDEV_RESET. A device still finishing its in-flight I/O completes the
   * command only afterwards (spec 4.3.3.3.1): its status comes with a later
   * I/O interruption, as Linux's ccw_io_helper waits for it, and this returns
   * a promise that settles then. Nothing else may be done to the device until
   * it has (the subchannel is busy).
   */
  reset(): void | Promise<void> {
    const outcome = this.start(Command.VDEV_RESET, 0);
    return outcome instanceof Promise ? outcome.then((late) => this.afterReset(late)) : this.afterReset(outcome);
  }

  private afterReset(outcome: Outcome): void {
    this.expect(outcome, 'VDEV_RESET');
    this.forgetDevice();
    // spec 4.3.3.3.2: the driver MAY check that the status reads back 0.
    if (this.revision >= 2 && this.getStatus() !== 0) throw new Error('the device status is not 0 after VDEV_RESET (spec 4.3.3.3.1)');
  }

  /**
   * READ_STATUS (revision 2); before it, the status last written, as Linux
   * keeps it. While a VDEV_RESET waits for the device the subchannel is busy,
   * and the status is the one before the reset: it is not 0 until the reset
   * completes (spec 4.3.3.3.1).
   */
  getStatus(): number {
    // Before revision 2 there is no READ_STATUS: like Linux, the driver reports the status it last wrote.
    if (this.revision < 2 || this.late !== undefined) return this.statusCache;
    this.memory.setU8(this.dataAddress, 0);
    this.expect(this.command(Command.READ_STATUS, 1), 'READ_STATUS');
    return this.memory.getU8(this.dataAddress);
  }

  /** Writes the status; a status the device refused (command reject) leaves it unchanged (spec 4.3.2.3). */
  setStatus(status: number): void {
    if ((status & DeviceStatus.DRIVER_OK) !== 0 && this.indicators === undefined) this.registerIndicators();
    this.memory.setU8(this.dataAddress, status);
    if (this.command(Command.WRITE_STATUS, 1) === 'ok') {
      this.statusCache = status & 0xff;
      if (status === 0) this.forgetDevice();
    }
  }

  /** READ_FEAT for each feature word the revision has (spec 4.3.2.4). */
  readDeviceFeatures(): bigint {
    let features = 0n;
    for (let index = 0; index < this.featureWords; index++) {
      this.block.setUint32(0, 0);
      this.block.setUint8(4, index);
      this.putBlock(5);
      this.expect(this.command(Command.READ_FEAT, 5), 'READ_FEAT');
      features |= BigInt(this.memory.getU32(this.dataAddress)) << BigInt(32 * index);
    }
    return features;
  }

  /** Writes the feature words; a word the device refuses (after FEATURES_OK) is dropped. */
  writeDriverFeatures(features: bigint): void {
    for (let index = 0; index < this.featureWords; index++) {
      this.block.setUint32(0, Number((features >> BigInt(32 * index)) & 0xffffffffn), true);
      this.block.setUint8(4, index);
      this.putBlock(5);
      this.command(Command.WRITE_FEAT, 5);
    }
  }

  /** Queues the device has: the highest index below 1024 with a non-zero READ_VQ_CONF size, plus one. */
  queueCount(): number {
    if (this.queues === undefined) {
      let count = 0;
      for (let index = 0; index < MAX_QUEUES; index++) if (this.queueMaxSize(index) !== 0) count = index + 1;
      this.queues = count;
    }
    return this.queues;
  }

  /** READ_VQ_CONF: the maximum size of queue `index`, 0 when it does not exist (spec 4.3.2.2). */
  queueMaxSize(index: number): number {
    this.block.setUint16(0, index);
    this.block.setUint16(2, 0);
    this.putBlock(4);
    this.expect(this.command(Command.READ_VQ_CONF, 4), 'READ_VQ_CONF');
    return this.dataView(4).getUint16(2);
  }

  /**
   * SET_VQ. Under revision 0 only a queue in the legacy layout can be
   * expressed (legacySplitRingLayout at {@link LEGACY_QUEUE_ALIGN}, the
   * device's maximum size, as Linux sets them up); anything else returns false untouched.
   */
  setupQueue(index: number, config: QueueConfig): boolean {
    if (this.revision === 0) return this.setupLegacyQueue(index, config);
    const b = this.block;
    b.setBigUint64(0, BigInt(config.descAddr));
    b.setUint32(8, 0);
    b.setUint16(12, index);
    b.setUint16(14, config.size);
    b.setBigUint64(16, BigInt(config.driverAddr));
    b.setBigUint64(24, BigInt(config.deviceAddr));
    this.putBlock(32);
    return this.command(Command.SET_VQ, 32) === 'ok';
  }

  private setupLegacyQueue(index: number, config: QueueConfig): boolean {
    const align = CcwDriverTransport.LEGACY_QUEUE_ALIGN;
    const expected = legacySplitRingLayout(config.descAddr, this.queueMaxSize(index), align);
    if (config.descAddr % align !== 0 || config.size !== expected.size || config.driverAddr !== expected.driverAddr || config.deviceAddr !== expected.deviceAddr) {
      return false;
    }
    const b = this.block;
    b.setBigUint64(0, BigInt(config.descAddr));
    b.setUint32(8, align);
    b.setUint16(12, index);
    b.setUint16(14, config.size);
    this.putBlock(LEGACY_VQ_INFO_SIZE);
    return this.command(Command.SET_VQ, LEGACY_VQ_INFO_SIZE) === 'ok';
  }

  /** Throws: channel I/O has no queue reset. */
  resetQueue(): void {
    throw new Error('virtio-ccw has no queue reset: VIRTIO_F_RING_RESET is reserved on channel I/O (spec 4.3.4)');
  }

  /** DIAGNOSE 0x500 subcode 3 with the subchannel ID, the queue index or notification data, and the cookie (spec 4.3.3.2). */
  notify(index: number, data?: number): void {
    const result = this.options.hypercall({
      gpr1: KVM_S390_VIRTIO_CCW_NOTIFY,
      gpr2: BigInt(this.options.subchannelId >>> 0),
      gpr3: BigInt((data ?? index) >>> 0),
      gpr4: this.cookie,
    });
    // spec 4.3.3.2.2: pass the host cookie back with the next notification.
    if (result !== undefined && result >= 0n) this.cookie = result;
  }

  /**
   * Like Linux: READ_CONF of offset + length bytes from the start of the
   * configuration space. Past its end the bytes are zeros; a range beyond the
   * driver's 256-byte area is answered from the configuration's size when the
   * space is smaller than that.
   */
  readConfig(offset: number, length: number): Uint8Array {
    const total = this.configSpan(offset, length);
    if (total > DATA_SIZE) {
      const inside = Math.max(0, Math.min(length, this.configBeyondArea(offset, length).length - offset));
      const bytes = new Uint8Array(length);
      if (inside > 0) bytes.set(this.readConfig(offset, inside));
      return bytes;
    }
    this.memory.fill(this.dataAddress, total);
    this.configCommand(Command.READ_CONF, total);
    return this.data(total).slice(offset);
  }

  /**
   * Like Linux: the configuration space up to `offset` is read back, then
   * WRITE_CONF sends it with `data` after it. Bytes past the end of the
   * configuration space are not sent when they lie beyond the driver's area.
   */
  writeConfig(offset: number, data: Uint8Array): void {
    const total = this.configSpan(offset, data.length);
    if (total > DATA_SIZE) {
      const inside = Math.max(0, Math.min(data.length, this.configBeyondArea(offset, data.length).length - offset));
      if (inside > 0) this.writeConfig(offset, data.subarray(0, inside));
      return;
    }
    this.memory.fill(this.dataAddress, total);
    if (offset > 0) this.configCommand(Command.READ_CONF, offset);
    this.memory.write(this.dataAddress + offset, data);
    this.configCommand(Command.WRITE_CONF, total);
  }

  /**
   * CCW has no generation counter: the driver reads the whole configuration
   * space and counts a new generation whenever it differs from the last read
   * (spec 4.3.2.5).
   */
  configGeneration(): number {
    const config = this.wholeConfig();
    if (config.length !== this.config.length || config.some((byte, i) => byte !== this.config[i])) {
      this.config = config;
      this.generation++;
    }
    return this.generation;
  }

  /** The handler gets a queue cause per queue indicator bit found set, and a config cause for the configuration indicator. */
  onInterrupt(handler: (cause: InterruptCause) => void): void {
    this.handler = handler;
  }

  /**
   * The channel subsystem made an I/O interruption pending for the subchannel.
   * Outside the driver's own channel programs this is unsolicited status: the
   * driver collects it and looks at its indicators.
   */
  ioInterrupt(): void {
    if (this.running) return;
    const response = this.subchannel.testSubchannel();
    if (response === undefined) return;
    const late = this.late;
    if (late !== undefined && response.intparm === late.intparm) {
      this.late = undefined;
      // A failure belongs to the waiting reset, not to the channel subsystem delivering the interruption.
      try {
        late.resolve(this.conclude(late.command, response, false));
      } catch (error) {
        late.reject(error);
      }
    } else {
      this.scanClassic();
    }
  }

  /** The channel subsystem made an adapter interruption pending for `isc`. */
  adapterInterrupt(isc: number): void {
    if (isc !== ADAPTER_ISC || this.indicators !== 'adapter') return;
    if (this.running) this.adapterDeferred = true;
    else this.scanAdapter();
  }

  private negotiateRevision(highest: number, legacy: boolean): number {
    const lowest = legacy ? 0 : 1;
    for (let revision = highest; revision >= lowest; revision--) {
      this.block.setUint16(0, revision);
      this.block.setUint16(2, 0);
      this.putBlock(4);
      if (this.command(Command.SET_VIRTIO_REV, 4) === 'ok') return revision;
    }
    // spec 4.3.2.1.3: a legacy device knows no SET_VIRTIO_REV; a transitional driver goes on as revision 0,
    // a non-transitional one stops.
    if (legacy) return 0;
    throw new Error(`the device accepts no virtio-ccw revision in 1..${highest}: legacy devices need the driver's legacy option`);
  }

  /** Like Linux's find_vqs: adapter indicators if the device takes them, else classic ones; then the configuration indicator. */
  private registerIndicators(): void {
    const queues = this.queueCount();
    let mode: 'classic' | 'adapter' = 'classic';
    if (this.tryAdapter) {
      const area = this.adapterIndicatorArea(queues);
      this.memory.setU8(this.summaryIndicator, 0);
      const b = this.block;
      b.setBigUint64(0, BigInt(this.summaryIndicator));
      b.setBigUint64(8, BigInt(area));
      b.setBigUint64(16, BigInt(ADAPTER_FIRST_BIT));
      b.setUint8(24, ADAPTER_ISC);
      this.putBlock(25);
      if (this.command(Command.SET_IND_ADAPTER, 25, CCW_FLAG_SLI) === 'ok') mode = 'adapter';
      // Like Linux, a device without adapter interruptions is not asked again.
      else this.tryAdapter = false;
    }
    if (mode === 'classic') {
      this.memory.fill(this.queueIndicators, 8);
      this.block.setBigUint64(0, BigInt(this.queueIndicators));
      this.putBlock(8);
      this.expect(this.command(Command.SET_IND, 8), 'SET_IND');
    }
    this.memory.fill(this.configIndicators, 8);
    this.block.setBigUint64(0, BigInt(this.configIndicators));
    this.putBlock(8);
    this.expect(this.command(Command.SET_CONF_IND, 8), 'SET_CONF_IND');
    this.indicators = mode;
  }

  private adapterIndicatorArea(queues: number): number {
    const bytes = Math.ceil((ADAPTER_FIRST_BIT + queues) / 8);
    this.adapterArea ??= below2G(this.options.allocator.alloc(Math.max(bytes, 8), 8), bytes);
    this.memory.fill(this.adapterArea, bytes);
    return this.adapterArea;
  }

  /** Classic queue indicators (if registered) and the configuration indicator; each bit is cleared before it is acted on. */
  private scanClassic(): void {
    if (this.indicators === undefined) return;
    if (this.indicators === 'classic' && this.memory.getU64(this.queueIndicators) !== 0n) {
      for (let bit = 0; bit < 64; bit++) {
        // Bit n of the big-endian u64 is in byte 7 - n/8.
        if (takeBit(this.memory, this.queueIndicators + 7 - (bit >> 3), 1 << (bit & 7))) this.handler({ kind: 'queue', index: bit });
      }
    }
    if (takeBit(this.memory, this.configIndicators + 7, 1)) this.handler({ kind: 'config' });
  }

  /** spec 4.3.3.1.2.2: the summary indicator is cleared before the queue indicators are processed. */
  private scanAdapter(): void {
    const area = this.adapterArea;
    if (area === undefined) return;
    Atomics.store(this.bytes(this.summaryIndicator, 1), 0, 0);
    const queues = this.queueCount();
    for (let index = 0; index < queues; index++) {
      const bit = ADAPTER_FIRST_BIT + index;
      if (takeBit(this.memory, area + (bit >> 3), 0x80 >> (bit & 7))) this.handler({ kind: 'queue', index });
    }
  }

  private configCommand(command: number, count: number): void {
    // A count beyond the configuration space ends with incorrect length; the bytes past its end stay zero.
    const outcome = this.command(command, count, 0, true);
    if (outcome === 'rejected') throw new Error(`CCW command 0x${command.toString(16)} was rejected`);
  }

  private configSpan(offset: number, length: number): number {
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0) {
      throw new RangeError(`configuration access of ${length} bytes at ${offset}`);
    }
    return offset + length;
  }

  /** The whole configuration space, for an access that reaches past the driver's area; throws if the space fills the area. */
  private configBeyondArea(offset: number, length: number): Uint8Array {
    const config = this.wholeConfig();
    if (config.length === DATA_SIZE) {
      throw new RangeError(`configuration access of ${length} bytes at ${offset} is beyond the driver's ${DATA_SIZE}-byte area`);
    }
    return config;
  }

  /** The configuration space, up to the driver's area: READ_CONF with SLI, whose residual count tells the size. */
  private wholeConfig(): Uint8Array {
    this.memory.fill(this.dataAddress, DATA_SIZE);
    this.expect(this.command(Command.READ_CONF, DATA_SIZE, CCW_FLAG_SLI), 'READ_CONF');
    return this.data(DATA_SIZE - (this.lastResponse?.residualCount ?? DATA_SIZE));
  }

  /**
   * Runs the one-CCW channel program `command` with `count` bytes at the data
   * area and collects its status with TEST SUBCHANNEL. Then, as for every I/O
   * interruption, the driver looks at its indicators.
   */
  private command(command: number, count: number, flags = 0, incorrectLengthAllowed = false): Outcome {
    const outcome = this.start(command, count, flags, incorrectLengthAllowed);
    if (outcome instanceof Promise) {
      throw new Error(
        `no status for CCW command 0x${command.toString(16)} after START SUBCHANNEL: the device completes it later (a reset waiting for in-flight I/O, spec 4.3.3.3.1); reset() waits for that, this command cannot`,
      );
    }
    return outcome;
  }

  /** {@link command}, or a promise of its outcome when the status comes later, with an I/O interruption. */
  private start(command: number, count: number, flags = 0, incorrectLengthAllowed = false): Outcome | Promise<Outcome> {
    const ccw = this.ccw;
    ccw.setUint8(0, command);
    ccw.setUint8(1, flags);
    ccw.setUint16(2, count);
    ccw.setUint32(4, this.dataAddress);
    this.memory.write(this.ccwAddress, new Uint8Array(ccw.buffer));
    const intparm = command << 16;
    this.running = true;
    let response: CcwInterruptionResponse | undefined;
    try {
      let cc = this.subchannel.startSubchannel(this.ccwAddress, intparm);
      if (cc === CC_STATUS_PENDING) {
        // Unsolicited status the driver has not collected yet: collect it, then start again.
        this.subchannel.testSubchannel();
        cc = this.subchannel.startSubchannel(this.ccwAddress, intparm);
      }
      if (cc !== CC_STARTED) throw new Error(`START SUBCHANNEL for CCW command 0x${command.toString(16)} ended with condition code ${cc}`);
      response = this.subchannel.testSubchannel();
    } finally {
      this.running = false;
    }
    if (response === undefined) {
      return new Promise((resolve, reject) => (this.late = { command, intparm, resolve, reject }));
    }
    if (response.intparm !== intparm) {
      throw new Error(`CCW command 0x${command.toString(16)}: the status is for interruption parameter 0x${response.intparm.toString(16)}`);
    }
    return this.conclude(command, response, incorrectLengthAllowed);
  }

  /** The outcome of `command` from its status; the indicators are looked at, as for every I/O interruption. */
  private conclude(command: number, response: CcwInterruptionResponse, incorrectLengthAllowed: boolean): Outcome {
    this.lastResponse = response;
    this.scanClassic();
    if (this.adapterDeferred) {
      this.adapterDeferred = false;
      this.scanAdapter();
    }
    if ((response.deviceStatus & DEV_STAT_UNIT_CHECK) !== 0 && ((response.sense?.[0] ?? 0) & SNS0_CMD_REJECT) !== 0) return 'rejected';
    const incorrectLength = response.subchannelStatus === SCHN_STAT_INCORR_LEN && incorrectLengthAllowed;
    const normal = response.subchannelStatus === 0 && (response.deviceStatus & ~(DEV_STAT_CHN_END | DEV_STAT_DEV_END)) === 0;
    if (!normal && !incorrectLength) {
      throw new Error(
        `CCW command 0x${command.toString(16)} failed: device status 0x${response.deviceStatus.toString(16)}, subchannel status 0x${response.subchannelStatus.toString(16)}`,
      );
    }
    return 'ok';
  }

  private expect(outcome: Outcome, what: string): void {
    if (outcome === 'rejected') throw new Error(`the device rejected ${what}`);
  }

  private forgetDevice(): void {
    this.indicators = undefined;
    this.statusCache = 0;
  }

  private putBlock(length: number): void {
    this.memory.write(this.dataAddress, new Uint8Array(this.block.buffer, 0, length));
  }

  private data(length: number): Uint8Array {
    const bytes = new Uint8Array(length);
    this.memory.read(this.dataAddress, bytes);
    return bytes;
  }

  private dataView(length: number): DataView {
    return new DataView(this.data(length).buffer);
  }

  private bytes(address: number, length: number): Uint8Array {
    const bytes = this.memory.slice(address, length, 'write');
    if (bytes === undefined) throw new RangeError(`driver memory at 0x${address.toString(16)} is gone`);
    return bytes;
  }
}

/** Atomically clears `mask` in the indicator byte at `address`; true if it was set. */
function takeBit(memory: GuestMemory, address: number, mask: number): boolean {
  const bytes = memory.slice(address, 1, 'write');
  if (bytes === undefined) return false;
  return (Atomics.and(bytes, 0, ~mask & 0xff) & mask) !== 0;
}

function below2G(address: number, length: number): number {
  if (address + length > WORD_LIMIT) {
    throw new RangeError(`driver data at 0x${address.toString(16)} is above 2 GiB; CCW data addresses are 31 bits: give the driver a lower allocator window`);
  }
  return address;
}
