import {
  DeviceStatus,
  VIRTIO_F_NOTIFICATION_DATA,
  VIRTIO_F_RING_PACKED,
  VirtioCore,
  featureBit,
  hasFeature,
  legacySplitRingLayout,
  queueConfigProblem,
  type GuestMemory,
  type QueueConfig,
  type QueueSlot,
  type VirtioDevice,
} from '@virtio-ts/virtqueue';
import { COMMAND_REJECT, type ChannelData } from './channel-data.js';
import { BlockSize, CLASSIC_INDICATOR_BITS, CcwCommand, ConditionCode, EINVAL, MAX_ISC, VirtioCcwRevision } from './constants.js';
import { AdapterIndicators, ClassicIndicators } from './indicators.js';
import { VirtualSubchannel, type InterruptionResponse } from './subchannel.js';

/** The VMM's channel subsystem, as far as one virtio-ccw subchannel needs it: interruption delivery. */
export interface ChannelSubsystem {
  /**
   * Make an I/O interruption pending for the subchannel with interruption
   * parameter `intparm`. The guest then collects the status with TEST
   * SUBCHANNEL ({@link CcwTransport.testSubchannel}).
   */
  ioInterrupt(intparm: number): void;
  /**
   * Make an adapter interruption pending for I/O interruption subclass `isc`.
   * Without it the transport rejects SET_IND_ADAPTER, and drivers fall back to
   * classic indicators (spec 4.3.2.6.4).
   */
  adapterInterrupt?(isc: number): void;
}

/** Options for {@link CcwTransport}. */
export interface CcwTransportOptions {
  /** The device the subchannel carries. */
  readonly device: VirtioDevice;
  /** Guest memory: channel programs, their data, indicators and the virtqueues. */
  readonly memory: GuestMemory;
  /**
   * The subchannel ID word the VMM assigned (what the guest puts in GPR 1 for
   * I/O instructions and in GPR 2 for DIAGNOSE 0x500): the subchannel number
   * in the low 16 bits, the 0x00010000 bit set, the subchannel set ID and
   * channel subsystem ID above.
   */
  readonly subchannelId: number;
  /** Interruption delivery. */
  readonly channelSubsystem: ChannelSubsystem;
  /** The highest transport revision the device accepts: 1, or 2 (the default, which adds READ_STATUS). */
  readonly maxRevision?: number;
  /**
   * Whether the device is transitional: it also takes revision 0, the legacy
   * interface, and legacy drivers, which select no revision (spec 4.3.2.1.3).
   * Legacy s390 drivers keep rings, requests and configuration fields
   * big-endian, so this needs a device that declares its
   * `legacyConfigFields`; it defaults to whether the device does, and true for
   * a device that does not throws.
   */
  readonly transitional?: boolean;
  /** Diagnostics sink for rejected commands and guest errors. */
  readonly log?: (message: string) => void;
}

/**
 * The device status bits spec 2.1 defines, less SUSPEND, which needs
 * VIRTIO_F_SUSPEND (never offered, spec 3.4); a write with any other bit is
 * not taken.
 */
const DEFINED_STATUS_BITS = Object.values(DeviceStatus).reduce((all, bit) => all | bit, 0) & ~DeviceStatus.SUSPEND;

const COMMAND_NAMES = new Map<number, string>(Object.entries(CcwCommand).map(([name, code]) => [code, name]));

type IndicatorMode = 'none' | 'classic' | 'adapter';

/**
 * A virtio device on a virtual channel subsystem (spec 4.3): a subchannel
 * whose control unit type is 0x3832 and whose model is the device ID. The VMM
 * forwards START SUBCHANNEL, TEST SUBCHANNEL and MODIFY SUBCHANNEL for this
 * subchannel and DIAGNOSE 0x500 notifications; the transport runs the channel
 * programs against a {@link VirtioCore} and delivers used buffer and
 * configuration change notifications through classic or adapter indicators.
 *
 * Revisions 1 and 2 are always supported. Revision 0, the legacy interface,
 * is supported when the device is transitional ({@link CcwTransportOptions.transitional}):
 * the legacy vq_info_block and queue layout, 32 feature bits, no FEATURES_OK,
 * and big-endian rings and configuration fields, as a legacy s390 driver
 * keeps them (spec 2.5.3, 2.7.3). A non-transitional device answers revision
 * 0 and legacy drivers with a command reject (spec 4.3.2.1.1, 4.3.2.1.3).
 */
export class CcwTransport {
  /** The status machine behind the channel commands. */
  readonly core: VirtioCore;
  /** The subchannel ID word. */
  readonly subchannelId: number;
  private readonly subchannel: VirtualSubchannel;
  private readonly channelSubsystem: ChannelSubsystem;
  private readonly maxRevision: number;
  /** Why revision 0 is refused, or undefined for a transitional device. */
  private readonly legacyRefusal: string | undefined;
  private readonly log: (message: string) => void;
  private revisionValue: number | undefined;
  private mode: IndicatorMode = 'none';
  private classicIndicators: ClassicIndicators | undefined;
  private adapterIndicators: AdapterIndicators | undefined;
  private configIndicators: ClassicIndicators | undefined;
  private readonly configOut: Uint8Array;
  private readonly configIn: Uint8Array;

  /** Puts `options.device` behind a new, disabled subchannel. Throws on invalid options (a VMM bug). */
  constructor(options: CcwTransportOptions) {
    const { subchannelId, device } = options;
    if (!Number.isInteger(subchannelId) || subchannelId < 0 || subchannelId > 0xffffffff || (subchannelId & 0x10000) === 0) {
      throw new RangeError(`subchannel ID 0x${subchannelId.toString(16)} is not a subchannel ID word (its 0x00010000 bit must be set)`);
    }
    const maxRevision = options.maxRevision ?? VirtioCcwRevision.READ_STATUS;
    if (maxRevision !== VirtioCcwRevision.VIRTIO_1 && maxRevision !== VirtioCcwRevision.READ_STATUS) {
      throw new RangeError(`maxRevision ${maxRevision} is not 1 or 2`);
    }
    if (!Number.isInteger(device.deviceType) || device.deviceType < 0 || device.deviceType > 0xff) {
      throw new RangeError(`device ID ${device.deviceType} does not fit the one-byte control unit model`);
    }
    const declaresLegacy = device.legacyConfigFields !== undefined;
    if (options.transitional === true && !declaresLegacy) {
      throw new RangeError(
        'a transitional virtio-ccw device needs legacyConfigFields: legacy s390 drivers read configuration fields big-endian, and only the device knows where its fields are',
      );
    }
    this.subchannelId = subchannelId;
    this.channelSubsystem = options.channelSubsystem;
    this.maxRevision = maxRevision;
    this.legacyRefusal =
      (options.transitional ?? declaresLegacy)
        ? undefined
        : declaresLegacy
          ? 'the device is configured non-transitional'
          : 'the device declares no legacyConfigFields, so its configuration space cannot be shown big-endian to a legacy s390 driver (spec 2.5.3); the device is non-transitional';
    this.log = options.log ?? (() => undefined);
    this.core = new VirtioCore({
      device,
      memory: options.memory,
      interrupts: { queue: (index) => this.queueInterrupt(index), config: () => this.configInterrupt() },
      // spec 4.3.3.2: DIAGNOSE 0x500 carries notification data. Queue reset is reserved on CCW (spec 4.3.4).
      transportFeatures: featureBit(VIRTIO_F_NOTIFICATION_DATA),
      ...(options.log === undefined ? {} : { log: options.log }),
    });
    // A legacy driver here runs on s390: its rings and fields are big-endian (spec 2.7.3).
    this.core.legacyByteOrder = 'big-endian';
    this.configOut = new Uint8Array(device.configSize);
    this.configIn = new Uint8Array(device.configSize);
    this.subchannel = new VirtualSubchannel(
      { execute: (command, data) => this.execute(command, data) },
      (intparm) => this.channelSubsystem.ioInterrupt(intparm),
      device.deviceType,
    );
  }

  /** The revision the driver selected, or undefined while none is set (spec 4.3.2.1.1). */
  get revision(): number | undefined {
    return this.revisionValue;
  }

  /** The subchannel is enabled. */
  get enabled(): boolean {
    return this.subchannel.enabled;
  }

  /** Status is pending for the subchannel. */
  get statusPending(): boolean {
    return this.subchannel.statusPending;
  }

  /** A channel program is still executing: a VDEV_RESET waits for the device to finish its reset. */
  get busy(): boolean {
    return this.subchannel.busy;
  }

  /**
   * MODIFY SUBCHANNEL changes the enabled bit; returns the condition code:
   * {@link ConditionCode.BUSY} (and nothing changes) while a channel program
   * is executing. Enabling forgets the revision (spec 4.3.2.1.1: unset "from
   * the time the associated subchannel has been enabled until a revision has
   * been successfully set").
   */
  setEnabled(enabled: boolean): number {
    if (this.subchannel.busy) return ConditionCode.BUSY;
    if (enabled && !this.subchannel.enabled) this.revisionValue = undefined;
    this.subchannel.enabled = enabled;
    return ConditionCode.STARTED;
  }

  /**
   * START SUBCHANNEL with the format-1 channel program at `channelProgram`
   * (the ORB's channel program address) and interruption parameter `intparm`.
   * The program normally runs to its end before this returns, its status
   * pending and {@link ChannelSubsystem.ioInterrupt} called. A VDEV_RESET (or
   * status 0) of a device whose reset finishes in-flight I/O first completes
   * only once the device has finished (spec 4.3.3.3.1): the program waits
   * there, the subchannel is busy, and the status becomes pending (and the
   * I/O interruption is raised) later. Returns the condition code
   * ({@link ConditionCode}).
   */
  startSubchannel(channelProgram: number, intparm = 0): number {
    return this.subchannel.start(this.core.memory, channelProgram, intparm);
  }

  /** TEST SUBCHANNEL: the pending status, now cleared (condition code 0), or undefined (condition code 1). */
  testSubchannel(): InterruptionResponse | undefined {
    return this.subchannel.test();
  }

  /**
   * An available buffer notification: the body of DIAGNOSE 0x500 subcode 3
   * (spec 4.3.3.2) once the VMM has matched GPR 2 to this subchannel. `data` is
   * GPR 3: the queue index, or with VIRTIO_F_NOTIFICATION_DATA the index in
   * bits 0-15 and next_off/next_wrap above. Returns the value for GPR 2: a host
   * cookie (always 0) or -EINVAL for a queue that does not exist.
   */
  notify(data: number): number {
    const index = data & 0xffff;
    const slot = this.core.queueSlot(index);
    if (slot === undefined || slot.maxSize === 0) return -EINVAL;
    this.core.notify(index, data >>> 0);
    return 0;
  }

  /** Subchannel reset by the VMM (system reset): the device is reset, the revision forgotten, the subchannel disabled. */
  reset(): void {
    this.resetDevice();
    this.revisionValue = undefined;
    this.subchannel.reset();
  }

  private execute(command: number, data: ChannelData): number {
    if (command === CcwCommand.SET_VIRTIO_REV) return this.setVirtioRevision(data);
    let revision = this.revisionValue;
    if (revision === undefined) {
      // spec 4.3.2.1.3: a virtio command before SET_VIRTIO_REV comes from a legacy driver.
      if (this.legacyRefusal !== undefined) return this.reject(command, `no revision is set, and legacy drivers are refused: ${this.legacyRefusal}`);
      revision = VirtioCcwRevision.LEGACY;
      this.selectRevision(revision, data);
    }
    switch (command) {
      case CcwCommand.READ_FEAT:
        return this.readFeatures(data);
      case CcwCommand.WRITE_FEAT:
        return this.writeFeatures(data);
      case CcwCommand.READ_CONF:
        return this.readConfig(data);
      case CcwCommand.WRITE_CONF:
        return this.writeConfig(data);
      case CcwCommand.WRITE_STATUS:
        return this.writeStatus(data);
      case CcwCommand.READ_STATUS:
        if (revision < VirtioCcwRevision.READ_STATUS) return this.reject(command, `READ_STATUS needs revision 2, not ${revision} (spec 4.3.2.3)`);
        return data.storeU8(0, this.core.status) ? BlockSize.STATUS : data.failure;
      case CcwCommand.READ_VQ_CONF:
        return this.readQueueConfig(data);
      case CcwCommand.SET_VQ:
        return this.setQueue(data, revision === VirtioCcwRevision.LEGACY);
      case CcwCommand.SET_IND:
        return this.setClassicIndicators(data);
      case CcwCommand.SET_CONF_IND:
        return this.setConfigIndicators(data);
      case CcwCommand.SET_IND_ADAPTER:
        return this.setAdapterIndicators(data);
      case CcwCommand.VDEV_RESET:
        // spec 4.3.3.3.1: the command completes once the reset has finished.
        this.resetDevice(data);
        return 0;
      default:
        return this.reject(command, 'not a virtio-ccw command');
    }
  }

  /** spec 4.3.2.1: struct virtio_rev_info. */
  private setVirtioRevision(data: ChannelData): number {
    if (!data.require(BlockSize.REV_INFO)) return data.failure;
    const revision = data.be16(0);
    const length = data.be16(2);
    const command = CcwCommand.SET_VIRTIO_REV;
    if (this.revisionValue !== undefined) return this.reject(command, `revision ${this.revisionValue} is already set (spec 4.3.2.1.1, 4.3.2.1.3)`);
    if (revision > this.maxRevision) return this.reject(command, `revision ${revision} is not supported (at most ${this.maxRevision})`);
    if (revision === VirtioCcwRevision.LEGACY && this.legacyRefusal !== undefined) {
      return this.reject(command, `revision 0 is refused: ${this.legacyRefusal}`);
    }
    if (length !== 0) return this.reject(command, `revision ${revision} carries no data, but length is ${length}`);
    this.selectRevision(revision, data);
    return BlockSize.REV_INFO;
  }

  /**
   * The driver's revision decides which interface the status machine speaks:
   * legacy (32 feature bits, no FEATURES_OK, big-endian rings) for revision 0.
   * A device last driven through the other interface is reset first, even at
   * status 0: feature bits and queues that interface took (feature bits above
   * 31, a legacy queue) mean nothing in this one. The command then completes
   * once the reset has.
   */
  private selectRevision(revision: number, data: ChannelData): void {
    const legacy = revision === VirtioCcwRevision.LEGACY;
    if (this.core.legacy !== legacy) {
      this.resetDevice(data);
      this.core.legacy = legacy;
    }
    this.revisionValue = revision;
  }

  /** spec 4.3.2.4: struct virtio_feature_desc; the device's feature bits beyond 127 are zero. */
  private readFeatures(data: ChannelData): number {
    if (!data.require(BlockSize.FEATURE_DESC)) return data.failure;
    const index = data.u8(4);
    return data.storeLe32(0, this.core.deviceFeaturesPage(index)) ? BlockSize.FEATURE_DESC : data.failure;
  }

  private writeFeatures(data: ChannelData): number {
    if (!data.require(BlockSize.FEATURE_DESC)) return data.failure;
    const features = data.le32(0);
    const index = data.u8(4);
    const command = CcwCommand.WRITE_FEAT;
    // A legacy driver has 32 feature bits (spec 2.2.3); the device offers at most 128.
    if (index >= (this.core.legacy ? 1 : 4)) {
      return features === 0 ? BlockSize.FEATURE_DESC : this.reject(command, `feature bits ${32 * index}.. were never offered`);
    }
    const refused = this.core.violations.features;
    this.core.writeDriverFeaturesPage(index, features);
    if (this.core.violations.features !== refused) return this.reject(command, 'the features are final once FEATURES_OK is set (spec 2.2, 3.1.1)');
    return BlockSize.FEATURE_DESC;
  }

  /**
   * spec 4.3.2.5: the configuration space from its start. A count up to its
   * size is a correct length (Linux reads offset + length bytes); beyond it,
   * the residual count says how much was not transferred.
   */
  private readConfig(data: ChannelData): number {
    const length = Math.min(data.count, this.configOut.length);
    const bytes = this.configOut.subarray(0, length);
    this.core.readConfig(0, bytes);
    return data.storeBytes(0, bytes) ? length : data.failure;
  }

  /**
   * spec 4.3.2.5: the driver sends the configuration space from its start.
   * The device is given only the runs of bytes that differ from its current
   * configuration, so that it sees the same field writes as over MMIO or PCI
   * and read-only fields the driver echoed back are not written.
   */
  private writeConfig(data: ChannelData): number {
    const length = Math.min(data.count, this.configIn.length);
    if (!data.require(length)) return data.failure;
    const incoming = this.configIn.subarray(0, length);
    const current = this.configOut.subarray(0, length);
    data.readInto(0, incoming);
    this.core.readConfig(0, current);
    for (let start = 0; start < length; ) {
      if (incoming[start] === current[start]) {
        start++;
        continue;
      }
      let end = start + 1;
      while (end < length && incoming[end] !== current[end]) end++;
      this.core.writeConfig(start, incoming.subarray(start, end));
      start = end;
    }
    return length;
  }

  /**
   * spec 4.3.2.3: a status the device does not take leaves the status field
   * unchanged and is answered with a command reject. Bits spec 2.1 does not
   * define are refused. The status machine ignores out-of-sequence writes and refuses FEATURES_OK for unacceptable
   * features; since the refusal cannot be undone for other bits written at the
   * same time, a write that adds FEATURES_OK together with anything but
   * DRIVER_OK is rejected whole.
   */
  private writeStatus(data: ChannelData): number {
    if (!data.require(BlockSize.STATUS)) return data.failure;
    const status = data.u8(0);
    if (status === 0) {
      this.resetDevice(data);
      return BlockSize.STATUS;
    }
    const command = CcwCommand.WRITE_STATUS;
    if ((status & ~DEFINED_STATUS_BITS) !== 0) return this.reject(command, `status bits 0x${(status & ~DEFINED_STATUS_BITS).toString(16)} are not defined (spec 2.1)`);
    const added = status & ~this.core.status;
    if ((added & DeviceStatus.FEATURES_OK) !== 0 && (added & ~(DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK)) !== 0) {
      return this.reject(command, `status 0x${status.toString(16)} adds FEATURES_OK together with other bits`);
    }
    this.core.writeStatus(status);
    const kept = ~DeviceStatus.DEVICE_NEEDS_RESET;
    if ((this.core.status & kept) !== (status & kept)) {
      return this.reject(command, `status 0x${status.toString(16)} was not taken; the status stays 0x${this.core.status.toString(16)}`);
    }
    return BlockSize.STATUS;
  }

  /** spec 4.3.2.2: struct vq_config_block; a queue that does not exist has size 0. */
  private readQueueConfig(data: ChannelData): number {
    if (!data.require(BlockSize.VQ_CONFIG)) return data.failure;
    const max = this.core.queueSlot(data.be16(0))?.maxSize ?? 0;
    return data.storeBe16(2, max) ? BlockSize.VQ_CONFIG : data.failure;
  }

  /**
   * spec 4.3.2.2: SET_VQ. Revision 1 and later send struct vq_info_block;
   * revision 0 struct vq_info_block_legacy (the legacy note): one block at
   * `queue`, laid out as spec 2.7.2 says with the driver's alignment (Linux
   * uses 4096). Both start with the queue's (descriptor area's) address and
   * have its index and size at bytes 12 and 14; an address of 0 releases the
   * queue.
   */
  private setQueue(data: ChannelData, legacy: boolean): number {
    const transferred = legacy ? BlockSize.VQ_INFO_LEGACY : BlockSize.VQ_INFO;
    if (!data.require(transferred)) return data.failure;
    const address = data.be64(0);
    const index = data.be16(12);
    const size = data.be16(14);
    if (address === 0) return this.configureQueue(index, undefined, transferred);
    if (!legacy) return this.configureQueue(index, { size, descAddr: address, driverAddr: data.be64(16), deviceAddr: data.be64(24) }, transferred);
    const align = data.be32(8);
    if (!(align >= 4 && Number.isInteger(Math.log2(align)))) {
      return this.reject(CcwCommand.SET_VQ, `queue ${index}: alignment ${align} is not a power of two of at least 4 (the used ring's alignment, spec 2.7)`);
    }
    return this.configureQueue(index, legacySplitRingLayout(address, size, align), transferred);
  }

  /**
   * Sets queue `index` up at `config`, or releases it (`config` undefined, as
   * Linux does when it deletes its queues, after a reset too). A modern queue
   * is set up only after FEATURES_OK, when its layout is known. The
   * configuration is checked before it is taken, so a bad one is rejected and
   * leaves the device as it was. Returns `transferred` on success.
   */
  private configureQueue(index: number, config: QueueConfig | undefined, transferred: number): number {
    const command = CcwCommand.SET_VQ;
    const slot = this.core.queueSlot(index);
    if (slot === undefined || slot.maxSize === 0) return this.reject(command, `queue ${index} does not exist`);
    if (config === undefined) return this.releaseQueue(index, slot, transferred);
    if (!this.core.legacy && (this.core.status & DeviceStatus.FEATURES_OK) === 0) {
      return this.reject(command, `queue ${index}: the ring layout depends on the features, so queues are set up after FEATURES_OK (spec 3.1.1)`);
    }
    if (slot.enabled) return this.reject(command, `queue ${index} is already set up; release it first`);
    const problem =
      config.size > slot.maxSize
        ? `size ${config.size} is above the maximum ${slot.maxSize}`
        : queueConfigProblem(this.core.memory, config, hasFeature(this.core.driverFeatures, VIRTIO_F_RING_PACKED));
    if (problem !== undefined) return this.reject(command, `queue ${index}: ${problem}`);
    this.core.setQueueConfig(index, config);
    if (!this.core.enableQueue(index)) return this.reject(command, `queue ${index} could not be enabled`);
    return transferred;
  }

  private releaseQueue(index: number, slot: Readonly<QueueSlot>, transferred: number): number {
    if (slot.queue !== undefined) {
      return this.reject(CcwCommand.SET_VQ, `queue ${index} is running; virtio-ccw has no queue reset (spec 4.3.4)`);
    }
    if (slot.enabled) this.core.disableQueue(index);
    return transferred;
  }

  /** spec 4.3.2.6.1; an address of 0 deregisters the indicators. */
  private setClassicIndicators(data: ChannelData): number {
    const command = CcwCommand.SET_IND;
    if (this.mode === 'adapter') return this.reject(command, 'two-stage queue indicators are already set up (spec 4.3.2.6.1)');
    if (this.core.queueCount > CLASSIC_INDICATOR_BITS) {
      return this.reject(command, `${this.core.queueCount} queues do not fit 64 classic indicator bits`);
    }
    if (!data.require(BlockSize.INDICATOR_ADDRESS)) return data.failure;
    const address = data.be64(0);
    const indicators = address === 0 ? undefined : ClassicIndicators.at(this.core.memory, address);
    if (address !== 0 && indicators === undefined) return this.reject(command, `queue indicators at 0x${address.toString(16)} are not writable guest memory`);
    this.mode = 'classic';
    this.classicIndicators = indicators;
    return BlockSize.INDICATOR_ADDRESS;
  }

  /** spec 4.3.2.6.2; an address of 0 deregisters the indicators. */
  private setConfigIndicators(data: ChannelData): number {
    if (!data.require(BlockSize.INDICATOR_ADDRESS)) return data.failure;
    const address = data.be64(0);
    const indicators = address === 0 ? undefined : ClassicIndicators.at(this.core.memory, address);
    if (address !== 0 && indicators === undefined) {
      return this.reject(CcwCommand.SET_CONF_IND, `configuration indicators at 0x${address.toString(16)} are not writable guest memory`);
    }
    this.configIndicators = indicators;
    return BlockSize.INDICATOR_ADDRESS;
  }

  /** spec 4.3.2.6.3: struct virtio_thinint_area; an indicator address of 0 deregisters the indicators. */
  private setAdapterIndicators(data: ChannelData): number {
    const command = CcwCommand.SET_IND_ADAPTER;
    if (this.channelSubsystem.adapterInterrupt === undefined) return this.reject(command, 'the channel subsystem has no adapter interruptions');
    if (this.mode === 'classic') return this.reject(command, 'classic queue indicators are already set up (spec 4.3.2.6.3.1)');
    if (!data.require(BlockSize.THININT_AREA)) return data.failure;
    const summaryAddress = data.be64(0);
    const areaAddress = data.be64(8);
    const bitNumber = data.be64(16);
    const isc = data.u8(24);
    if (isc > MAX_ISC) return this.reject(command, `isc ${isc} is not an I/O interruption subclass (0..${MAX_ISC})`);
    let indicators: AdapterIndicators | undefined;
    if (areaAddress !== 0) {
      const found = AdapterIndicators.at(this.core.memory, summaryAddress, areaAddress, bitNumber, this.core.queueCount, isc);
      if (typeof found === 'string') return this.reject(command, found);
      indicators = found;
    }
    this.mode = 'adapter';
    this.adapterIndicators = indicators;
    return BlockSize.THININT_AREA;
  }

  /** spec 4.3.3.1.1, 4.3.3.1.2. */
  private queueInterrupt(index: number): void {
    if (this.mode === 'classic') {
      if (this.classicIndicators === undefined) return;
      this.classicIndicators.set(index);
      this.subchannel.requestInterrupt();
    } else if (this.mode === 'adapter') {
      const indicators = this.adapterIndicators;
      if (indicators !== undefined && indicators.set(index)) this.channelSubsystem.adapterInterrupt?.(indicators.isc);
    }
  }

  /** spec 4.3.3.1.1: bit 0 of the configuration indicators, and an I/O interruption if none is pending. */
  private configInterrupt(): void {
    if (this.configIndicators === undefined) return;
    this.configIndicators.set(0);
    this.subchannel.requestInterrupt();
  }

  /**
   * The virtio reset (VDEV_RESET, or status 0): the device and the indicators
   * are forgotten; the revision stays. When the device is still finishing
   * in-flight I/O, the command in `data` completes only once it has (spec
   * 4.3.3.3.1: "MUST finish the virtio reset operation and reinitialize device
   * status to zero before signalling completion").
   */
  private resetDevice(data?: ChannelData): void {
    this.core.reset();
    this.mode = 'none';
    this.classicIndicators = undefined;
    this.adapterIndicators = undefined;
    this.configIndicators = undefined;
    const pending = this.core.resetPending;
    if (pending !== undefined) data?.completeWhen(pending);
  }

  private reject(command: number, reason: string): number {
    this.log(`CCW ${COMMAND_NAMES.get(command) ?? `command 0x${command.toString(16)}`} rejected: ${reason}`);
    return COMMAND_REJECT;
  }
}
