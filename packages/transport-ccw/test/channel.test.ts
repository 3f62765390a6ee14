/**
 * The channel layer (spec 4.3.1 "Basic Concepts" and the channel architecture
 * it defers to): CCW fetch and validation, command chaining, TIC, residual
 * counts, incorrect length with and without SLI, unit checks with sense data,
 * program checks, and condition codes.
 */
import { describe, expect, it } from 'vitest';
import {
  CcwCommand,
  CcwFlag,
  ConditionCode,
  MAX_CCWS_PER_PROGRAM,
  SENSE_DATA_SIZE,
  SENSE_ID_SIZE,
  SenseByte0,
  StatusControl,
  SubchannelStatus,
  UnitStatus,
} from '../src/index.js';
import { DATA, PROGRAM, run, transportRig, writeBlock, writeProgram, type TransportRig } from './harness.js';

const END = UnitStatus.CHANNEL_END | UnitStatus.DEVICE_END;

function withRevision(rig: TransportRig, revision = 2): void {
  writeBlock(rig.memory, 4, (v) => v.setUint16(0, revision));
  expect(run(rig.transport, [{ command: CcwCommand.SET_VIRTIO_REV, count: 4 }], rig.memory).deviceStatus).toBe(END);
}

describe('CCW channel programs (spec 4.3.1)', () => {
  it('SENSE ID reports control unit type 0x3832 and the device ID as model', () => {
    const rig = transportRig();
    const status = run(rig.transport, [{ command: CcwCommand.SENSE_ID, count: SENSE_ID_SIZE }], rig.memory);
    expect(status).toMatchObject({ deviceStatus: END, subchannelStatus: 0, residualCount: 0, intparm: 0x1234 });
    const id = new Uint8Array(8);
    rig.memory.read(DATA, id);
    expect([...id]).toEqual([0xff, 0x38, 0x32, rig.device.deviceType, 0, 0, 0, 0]);
  });

  it('a short read with SLI is truncated without incorrect length; without SLI it is indicated', () => {
    const rig = transportRig();
    rig.memory.fill(DATA, 16, 0xee);
    const sli = run(rig.transport, [{ command: CcwCommand.SENSE_ID, flags: CcwFlag.SLI, count: 4 }], rig.memory);
    expect(sli).toMatchObject({ deviceStatus: END, subchannelStatus: 0, residualCount: 0 });
    expect(rig.memory.getU8(DATA + 4)).toBe(0xee);
    const strict = run(rig.transport, [{ command: CcwCommand.SENSE_ID, count: 4 }], rig.memory);
    expect(strict).toMatchObject({ deviceStatus: END, subchannelStatus: SubchannelStatus.INCORRECT_LENGTH, residualCount: 0 });
  });

  it('a long count leaves a residual count; incorrect length unless SLI', () => {
    const rig = transportRig();
    withRevision(rig);
    rig.memory.setU8(DATA, 0);
    const strict = run(rig.transport, [{ command: CcwCommand.WRITE_STATUS, count: 3 }], rig.memory);
    expect(strict).toMatchObject({ deviceStatus: END, subchannelStatus: SubchannelStatus.INCORRECT_LENGTH, residualCount: 2 });
    expect(strict.statusControl & StatusControl.ALERT).toBe(StatusControl.ALERT);
    // spec 4.3.1.3: with SLI the device SHOULD accept a buffer that is too long.
    rig.memory.setU8(DATA, 1);
    const sli = run(rig.transport, [{ command: CcwCommand.WRITE_STATUS, flags: CcwFlag.SLI, count: 3 }], rig.memory);
    expect(sli).toMatchObject({ deviceStatus: END, subchannelStatus: 0, residualCount: 2 });
    expect(rig.transport.core.status).toBe(1);
  });

  it('a count too short for the command is a unit check with command reject; without SLI also incorrect length (spec 4.3.1.3)', () => {
    const rig = transportRig();
    withRevision(rig);
    for (const flags of [0, CcwFlag.SLI]) {
      const status = run(rig.transport, [{ command: CcwCommand.READ_FEAT, flags, count: 4 }], rig.memory);
      expect(status.deviceStatus).toBe(END | UnitStatus.UNIT_CHECK);
      expect(status.subchannelStatus).toBe(flags === 0 ? SubchannelStatus.INCORRECT_LENGTH : 0);
      expect(status.sense?.[0]).toBe(SenseByte0.COMMAND_REJECT);
      expect(status.residualCount).toBe(4);
    }
  });

  it('an unknown command is a unit check with command reject; BASIC SENSE returns the sense data once', () => {
    const rig = transportRig();
    withRevision(rig);
    const status = run(rig.transport, [{ command: 0x99, count: 0 }], rig.memory);
    expect(status.deviceStatus).toBe(END | UnitStatus.UNIT_CHECK);
    expect(status.statusControl).toBe(StatusControl.PRIMARY | StatusControl.SECONDARY | StatusControl.STATUS_PENDING | StatusControl.ALERT);
    expect(status.sense?.length).toBe(SENSE_DATA_SIZE);
    expect(status.sense?.[0]).toBe(SenseByte0.COMMAND_REJECT);
    expect(rig.log.at(-1)).toMatch(/command 0x99 rejected: not a virtio-ccw command/);
    rig.memory.fill(DATA, SENSE_DATA_SIZE, 0xee);
    expect(run(rig.transport, [{ command: CcwCommand.BASIC_SENSE, count: SENSE_DATA_SIZE }], rig.memory).deviceStatus).toBe(END);
    expect(rig.memory.getU8(DATA)).toBe(SenseByte0.COMMAND_REJECT);
    run(rig.transport, [{ command: CcwCommand.BASIC_SENSE, count: SENSE_DATA_SIZE }], rig.memory);
    expect(rig.memory.getU8(DATA)).toBe(0);
  });

  it('an invalid command code (low 4 bits zero) is a channel program check', () => {
    const rig = transportRig();
    const status = run(rig.transport, [{ command: 0x10, count: 0 }], rig.memory);
    expect(status).toMatchObject({ deviceStatus: 0, subchannelStatus: SubchannelStatus.PROGRAM_CHECK, ccwAddress: PROGRAM + 8 });
  });

  it('command chaining runs every CCW and reports the last one', () => {
    const rig = transportRig();
    withRevision(rig);
    writeBlock(rig.memory, 2, (v) => v.setUint8(0, 1) /* ACKNOWLEDGE */, DATA);
    writeBlock(rig.memory, 1, (v) => v.setUint8(0, 3) /* ACKNOWLEDGE | DRIVER */, DATA + 0x100);
    const status = run(
      rig.transport,
      [
        { command: CcwCommand.NOOP, flags: CcwFlag.CC, count: 0 },
        { command: CcwCommand.WRITE_STATUS, flags: CcwFlag.CC, count: 1 },
        { command: CcwCommand.WRITE_STATUS, count: 1, cda: DATA + 0x100 },
      ],
      rig.memory,
    );
    expect(status).toMatchObject({ deviceStatus: END, subchannelStatus: 0, ccwAddress: PROGRAM + 24 });
    expect(rig.transport.core.status).toBe(3);
  });

  it('chaining stops at a unit check: later CCWs are not executed', () => {
    const rig = transportRig();
    withRevision(rig);
    rig.memory.setU8(DATA, 1);
    const status = run(
      rig.transport,
      [
        { command: 0x99, flags: CcwFlag.CC, count: 0 },
        { command: CcwCommand.WRITE_STATUS, count: 1 },
      ],
      rig.memory,
    );
    expect(status.deviceStatus).toBe(END | UnitStatus.UNIT_CHECK);
    expect(status.ccwAddress).toBe(PROGRAM + 8);
    expect(rig.transport.core.status).toBe(0);
  });

  it('incorrect length suppresses command chaining; SLI lets the chain go on', () => {
    const rig = transportRig();
    withRevision(rig);
    rig.memory.setU8(DATA, 1);
    rig.memory.setU8(DATA + 0x100, 3);
    const chain = (flags: number) => [
      { command: CcwCommand.WRITE_STATUS, flags: CcwFlag.CC | flags, count: 2 },
      { command: CcwCommand.WRITE_STATUS, count: 1, cda: DATA + 0x100 },
    ];
    expect(run(rig.transport, chain(0), rig.memory)).toMatchObject({ subchannelStatus: SubchannelStatus.INCORRECT_LENGTH, ccwAddress: PROGRAM + 8 });
    expect(rig.transport.core.status).toBe(1);
    expect(run(rig.transport, chain(CcwFlag.SLI), rig.memory)).toMatchObject({ subchannelStatus: 0, ccwAddress: PROGRAM + 16 });
    expect(rig.transport.core.status).toBe(3);
  });

  it('TIC continues the program elsewhere; TIC after TIC is a program check', () => {
    const rig = transportRig();
    withRevision(rig);
    rig.memory.setU8(DATA, 1);
    writeProgram(rig.memory, [{ command: CcwCommand.WRITE_STATUS, count: 1 }], PROGRAM + 0x100);
    expect(run(rig.transport, [{ command: CcwCommand.TIC, count: 0, cda: PROGRAM + 0x100 }], rig.memory)).toMatchObject({
      deviceStatus: END,
      ccwAddress: PROGRAM + 0x108,
    });
    expect(rig.transport.core.status).toBe(1);
    writeProgram(rig.memory, [{ command: CcwCommand.TIC, count: 0, cda: PROGRAM }], PROGRAM + 0x100);
    expect(run(rig.transport, [{ command: CcwCommand.TIC, count: 0, cda: PROGRAM + 0x100 }], rig.memory).subchannelStatus).toBe(
      SubchannelStatus.PROGRAM_CHECK,
    );
    expect(run(rig.transport, [{ command: 0x18, count: 0 }], rig.memory).subchannelStatus).toBe(SubchannelStatus.PROGRAM_CHECK);
  });

  it('an endless program (chained NOP and a TIC back) ends with a program check instead of hanging', () => {
    const rig = transportRig();
    const status = run(
      rig.transport,
      [
        { command: CcwCommand.NOOP, flags: CcwFlag.CC, count: 0 },
        { command: CcwCommand.TIC, count: 0, cda: PROGRAM },
      ],
      rig.memory,
    );
    expect(status.subchannelStatus).toBe(SubchannelStatus.PROGRAM_CHECK);
    expect(MAX_CCWS_PER_PROGRAM).toBeGreaterThan(1);
  });

  it('a data address outside guest memory, or above 31 bits, is a program check and changes nothing', () => {
    const rig = transportRig();
    withRevision(rig);
    for (const cda of [0x20000 /* the hole */, 0x7ffffffc, 0x80000000 + DATA]) {
      const status = run(rig.transport, [{ command: CcwCommand.WRITE_STATUS, count: 1, cda }], rig.memory);
      expect(status).toMatchObject({ deviceStatus: 0, subchannelStatus: SubchannelStatus.PROGRAM_CHECK });
      expect(run(rig.transport, [{ command: CcwCommand.READ_STATUS, count: 1, cda }], rig.memory).subchannelStatus).toBe(SubchannelStatus.PROGRAM_CHECK);
    }
    expect(rig.transport.core.status).toBe(0);
  });

  it('a zero count transfers nothing, so its data address is not checked', () => {
    const rig = transportRig();
    withRevision(rig);
    for (const command of [CcwCommand.WRITE_CONF, CcwCommand.READ_CONF, CcwCommand.NOOP]) {
      expect(run(rig.transport, [{ command, flags: CcwFlag.SLI, count: 0, cda: 0x20001 }], rig.memory)).toMatchObject({ deviceStatus: END, subchannelStatus: 0 });
    }
  });

  it('a CCW outside guest memory or not doubleword aligned is a program check', () => {
    const rig = transportRig();
    for (const address of [0x20000, PROGRAM + 4, 0x80000000]) {
      expect(rig.transport.startSubchannel(address, 7)).toBe(ConditionCode.STARTED);
      expect(rig.transport.testSubchannel()).toMatchObject({ intparm: 7, subchannelStatus: SubchannelStatus.PROGRAM_CHECK });
    }
  });

  it('data chaining, indirect data addressing, suspend and MIDA are refused with a program check', () => {
    const rig = transportRig();
    for (const flag of [CcwFlag.CD, CcwFlag.IDA, CcwFlag.S, CcwFlag.MIDA]) {
      expect(run(rig.transport, [{ command: CcwCommand.NOOP, flags: flag, count: 0 }], rig.memory).subchannelStatus).toBe(SubchannelStatus.PROGRAM_CHECK);
    }
  });

  it('SKIP suppresses storing read data; PCI is reported in the final status', () => {
    const rig = transportRig();
    rig.memory.fill(DATA, 8, 0xee);
    const status = run(rig.transport, [{ command: CcwCommand.SENSE_ID, flags: CcwFlag.SKIP | CcwFlag.SLI | CcwFlag.PCI, count: 8 }], rig.memory);
    expect(status).toMatchObject({ deviceStatus: END, subchannelStatus: SubchannelStatus.PROGRAM_CONTROLLED_INTERRUPTION });
    expect(rig.memory.getU8(DATA)).toBe(0xee);
  });

  it('condition codes: not operational while disabled, status pending until TEST SUBCHANNEL', () => {
    const rig = transportRig();
    writeProgram(rig.memory, [{ command: CcwCommand.NOOP, count: 0 }]);
    rig.transport.setEnabled(false);
    expect(rig.transport.startSubchannel(PROGRAM)).toBe(ConditionCode.NOT_OPERATIONAL);
    rig.transport.setEnabled(true);
    expect(rig.transport.startSubchannel(PROGRAM, 5)).toBe(ConditionCode.STARTED);
    expect(rig.ioInterrupts).toEqual([5]);
    expect(rig.transport.startSubchannel(PROGRAM)).toBe(ConditionCode.STATUS_PENDING);
    expect(rig.transport.testSubchannel()).toMatchObject({ intparm: 5, deviceStatus: END });
    expect(rig.transport.testSubchannel()).toBeUndefined();
    expect(rig.transport.startSubchannel(PROGRAM)).toBe(ConditionCode.STARTED);
  });
});
