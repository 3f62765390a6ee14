import type { GuestMemory } from '@virtio-ts/virtqueue';
import { COMMAND_REJECT, ChannelData, PROGRAM_CHECK } from './channel-data.js';
import {
  CcwCommand,
  CcwFlag,
  ConditionCode,
  SENSE_DATA_SIZE,
  SENSE_ID_SIZE,
  SenseByte0,
  StatusControl,
  SubchannelStatus,
  UnitStatus,
  VIRTIO_CCW_CU_TYPE,
} from './constants.js';

/**
 * What TEST SUBCHANNEL stores for a pending status: the fields of the SCSW a
 * virtio-ccw driver looks at, and the sense data of a unit check (what the
 * IRB's extended-control word carries with concurrent sense).
 */
export interface InterruptionResponse {
  /** The interruption parameter: the one given to START SUBCHANNEL, or 0 for unsolicited status. */
  readonly intparm: number;
  /** Status-control bits ({@link StatusControl}): primary and secondary for a channel program's end, alert for errors and unsolicited status. */
  readonly statusControl: number;
  /** The address of the last CCW executed plus 8 (0 for unsolicited status). */
  readonly ccwAddress: number;
  /** Device status ({@link UnitStatus}). */
  readonly deviceStatus: number;
  /** Subchannel status ({@link SubchannelStatus}). */
  readonly subchannelStatus: number;
  /** Residual count of the last CCW: bytes of its count that were not transferred. */
  readonly residualCount: number;
  /** With a unit check: the sense data (byte 0 {@link SenseByte0}); otherwise undefined. */
  readonly sense: Uint8Array | undefined;
}

/** The device behind the subchannel: it executes every command that is not a basic channel command. */
export interface CommandHandler {
  /**
   * Executes `command` on `data`. Returns the number of bytes the command
   * transfers for this count (the channel derives the residual count and the
   * incorrect-length indication from it), or {@link COMMAND_REJECT}, or
   * {@link PROGRAM_CHECK}. Must not throw.
   */
  execute(command: number, data: ChannelData): number;
}

/**
 * A bound on the CCWs one channel program may execute. The architecture has
 * none, but a guest can build an endless program (a TIC back to a chained
 * CCW), and a device must not hang; real programs for virtio-ccw are one CCW.
 */
export const MAX_CCWS_PER_PROGRAM = 1024;

/** Format-1 CCW addresses are 31 bits wide and doubleword aligned. */
const CCW_ADDRESS_LIMIT = 2 ** 31;

const NORMAL_END = UnitStatus.CHANNEL_END | UnitStatus.DEVICE_END;
const SOLICITED = StatusControl.PRIMARY | StatusControl.SECONDARY | StatusControl.STATUS_PENDING;

/** A channel program being executed: where it has got to. */
interface Program {
  readonly memory: GuestMemory;
  readonly intparm: number;
  /** The next CCW to fetch. */
  address: number;
  /** CCWs fetched so far. */
  executed: number;
  /** The CCW just fetched came from a TIC. */
  afterTic: boolean;
  /** PROGRAM_CONTROLLED_INTERRUPTION once a CCW with PCI was executed. */
  pci: number;
}

/**
 * A virtual subchannel: runs channel programs (START SUBCHANNEL returns with
 * the program's status pending, unless a command completes later: see
 * {@link ChannelData.completeWhen}), keeps at most one pending status until
 * TEST SUBCHANNEL, answers the basic channel commands itself (NOP, BASIC
 * SENSE, SENSE ID, TIC; spec 4.3.1) and hands every other command to the
 * device. Format-1 CCWs only; data chaining, indirect data addressing and
 * suspend are not supported and end the program with a program check.
 */
export class VirtualSubchannel {
  /** The subchannel is enabled (MODIFY SUBCHANNEL); a disabled one is not operational and makes no interruptions. */
  enabled = false;
  private pending: InterruptionResponse | undefined;
  private executing = false;
  /** Counts subchannel resets, so that a program waiting for a command is dropped by one. */
  private epoch = 0;
  private readonly sense = new Uint8Array(SENSE_DATA_SIZE);
  private readonly senseId = new Uint8Array(SENSE_ID_SIZE);
  private readonly ccw = new ChannelData();
  private readonly data = new ChannelData();

  /**
   * `ioInterrupt` makes an I/O interruption pending in the VMM for this
   * subchannel; `controlUnitModel` is what SENSE ID reports (the virtio device ID).
   */
  constructor(
    private readonly handler: CommandHandler,
    private readonly ioInterrupt: (intparm: number) => void,
    controlUnitModel: number,
  ) {
    this.senseId[0] = 0xff;
    this.senseId[1] = VIRTIO_CCW_CU_TYPE >> 8;
    this.senseId[2] = VIRTIO_CCW_CU_TYPE & 0xff;
    this.senseId[3] = controlUnitModel & 0xff;
  }

  /** Status is pending (TEST SUBCHANNEL would store it). */
  get statusPending(): boolean {
    return this.pending !== undefined;
  }

  /** A channel program is executing: it waits for a command to complete. */
  get busy(): boolean {
    return this.executing;
  }

  /**
   * START SUBCHANNEL with a format-1 channel program at `channelProgram`: runs
   * it to its end, makes its status pending and raises the I/O interruption.
   * A command that completes later (see {@link ChannelData.completeWhen})
   * suspends the program there, and the rest runs once the command has
   * completed. Returns the condition code.
   */
  start(memory: GuestMemory, channelProgram: number, intparm: number): number {
    if (!this.enabled) return ConditionCode.NOT_OPERATIONAL;
    if (this.pending !== undefined) return ConditionCode.STATUS_PENDING;
    if (this.executing) return ConditionCode.BUSY;
    this.executing = true;
    this.proceed({ memory, intparm: intparm >>> 0, address: channelProgram, executed: 0, afterTic: false, pci: 0 });
    return ConditionCode.STARTED;
  }

  /** TEST SUBCHANNEL: the pending status, now cleared, or undefined when none is pending. */
  test(): InterruptionResponse | undefined {
    const status = this.pending;
    this.pending = undefined;
    return status;
  }

  /**
   * The device wants the driver to look at its indicators: make unsolicited
   * status pending and interrupt, unless status is already pending or a
   * channel program is running, whose own status will do (spec 4.3.3.1.1:
   * "If an interrupt is not already pending for the subchannel").
   */
  requestInterrupt(): void {
    if (!this.enabled || this.executing || this.pending !== undefined) return;
    this.pending = {
      intparm: 0,
      statusControl: StatusControl.ALERT | StatusControl.STATUS_PENDING,
      ccwAddress: 0,
      deviceStatus: 0,
      subchannelStatus: 0,
      residualCount: 0,
      sense: undefined,
    };
    this.ioInterrupt(0);
  }

  /** Subchannel reset: no status pending, no sense data, disabled; a program waiting for a command is dropped. */
  reset(): void {
    this.epoch++;
    this.executing = false;
    this.pending = undefined;
    this.sense.fill(0);
    this.enabled = false;
  }

  /** Runs `program` on until it ends, then makes its status pending; or leaves it waiting for a command to complete. */
  private proceed(program: Program): void {
    const status = this.run(program);
    if (status !== undefined) this.finish(status);
  }

  private finish(status: InterruptionResponse): void {
    this.executing = false;
    this.pending = status;
    this.ioInterrupt(status.intparm);
  }

  /**
   * The command just executed completes when `completion` settles; then the
   * program ends with `status`, or, chained, goes on. A subchannel reset
   * meanwhile drops the program.
   */
  private wait(program: Program, completion: Promise<void>, status: InterruptionResponse | undefined): void {
    const epoch = this.epoch;
    const resume = (): void => {
      if (epoch !== this.epoch) return;
      if (status !== undefined) this.finish(status);
      else this.proceed(program);
    };
    void completion.then(resume, resume);
  }

  /** Executes CCWs from `program.address`; returns the ending status, or undefined while a command is completing. */
  private run(program: Program): InterruptionResponse | undefined {
    const { ccw, data } = this;
    const { memory, intparm } = program;
    for (; ; program.executed++) {
      const address = program.address;
      const next = address + 8;
      if (program.executed === MAX_CCWS_PER_PROGRAM || address % 8 !== 0 || address + 8 > CCW_ADDRESS_LIMIT) {
        return this.programCheck(intparm, next);
      }
      ccw.load(memory, address, 8, 0);
      if (!ccw.require(8)) return this.programCheck(intparm, next);
      const command = ccw.u8(0);
      const flags = ccw.u8(1);
      const count = ccw.be16(2);
      const dataAddress = ccw.be32(4);
      if ((command & 0x0f) === 0) return this.programCheck(intparm, next);
      if ((command & 0x0f) === CcwCommand.TIC) {
        // A TIC may not follow a TIC, and has no modifier bits.
        if (command !== CcwCommand.TIC || program.afterTic) return this.programCheck(intparm, next);
        program.address = dataAddress;
        program.afterTic = true;
        continue;
      }
      program.afterTic = false;
      if ((flags & (CcwFlag.CD | CcwFlag.IDA | CcwFlag.S | CcwFlag.MIDA)) !== 0) return this.programCheck(intparm, next);
      if ((flags & CcwFlag.PCI) !== 0) program.pci = SubchannelStatus.PROGRAM_CONTROLLED_INTERRUPTION;
      data.load(memory, dataAddress, count, flags);
      const outcome = this.outcome(this.execute(command, data), intparm, next, count, flags, program.pci);
      program.address = next;
      if (data.completion !== undefined) {
        program.executed++;
        this.wait(program, data.completion, outcome);
        return undefined;
      }
      if (outcome !== undefined) return outcome;
    }
  }

  /** How a CCW that transferred `transferred` bytes ends the program, or undefined when the program goes on to the next CCW. */
  private outcome(transferred: number, intparm: number, next: number, count: number, flags: number, pci: number): InterruptionResponse | undefined {
    const data = this.data;
    if (transferred === PROGRAM_CHECK) return this.programCheck(intparm, next, pci);
    if (transferred === COMMAND_REJECT) {
      this.sense.fill(0);
      this.sense[0] = SenseByte0.COMMAND_REJECT;
      return {
        intparm,
        statusControl: SOLICITED | StatusControl.ALERT,
        ccwAddress: next,
        deviceStatus: NORMAL_END | UnitStatus.UNIT_CHECK,
        subchannelStatus: pci | (data.short && !data.suppressLength ? SubchannelStatus.INCORRECT_LENGTH : 0),
        residualCount: count,
        sense: this.sense.slice(),
      };
    }
    const residualCount = Math.max(0, count - transferred);
    // Incorrect length ends the program: command chaining is suppressed (unless SLI suppressed the indication).
    if (count !== transferred && !data.suppressLength) {
      return {
        intparm,
        statusControl: SOLICITED | StatusControl.ALERT,
        ccwAddress: next,
        deviceStatus: NORMAL_END,
        subchannelStatus: pci | SubchannelStatus.INCORRECT_LENGTH,
        residualCount,
        sense: undefined,
      };
    }
    if ((flags & CcwFlag.CC) === 0) {
      return { intparm, statusControl: SOLICITED, ccwAddress: next, deviceStatus: NORMAL_END, subchannelStatus: pci, residualCount, sense: undefined };
    }
    return undefined;
  }

  private execute(command: number, data: ChannelData): number {
    switch (command) {
      case CcwCommand.NOOP:
        return 0;
      case CcwCommand.BASIC_SENSE:
        if (!data.storeBytes(0, this.sense)) return data.failure;
        this.sense.fill(0);
        return SENSE_DATA_SIZE;
      case CcwCommand.SENSE_ID:
        return data.storeBytes(0, this.senseId) ? SENSE_ID_SIZE : data.failure;
      default:
        return this.handler.execute(command, data);
    }
  }

  private programCheck(intparm: number, ccwAddress: number, pci = 0): InterruptionResponse {
    return {
      intparm,
      statusControl: SOLICITED | StatusControl.ALERT,
      ccwAddress,
      deviceStatus: 0,
      subchannelStatus: pci | SubchannelStatus.PROGRAM_CHECK,
      residualCount: 0,
      sense: undefined,
    };
  }
}
