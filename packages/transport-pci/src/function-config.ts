import type { VirtioDevice } from '@virtio-ts/virtqueue';
import { ConfigSpace } from './config-space.js';
import {
  CommonCfg,
  Msix,
  PCI_CONFIG_SPACE_SIZE,
  PCIE_CONFIG_SPACE_SIZE,
  PciCapabilityId,
  PciCommand,
  PciConfig,
  PciExpress,
  PciPm,
  VIRTIO_PCI_VENDOR_ID,
  VirtioPciCap,
  VirtioPciCapField,
} from './constants.js';
import { pciClassCode } from './identity.js';
import { DEVICE_CFG_OFFSET, ISR_OFFSET, PciBarIndex, type FunctionLayout } from './layout.js';

const TWO_32 = 0x1_0000_0000;

/** What of the transport's options shapes configuration space. */
export interface IdentityOptions {
  /** PCI Device ID. */
  readonly deviceId: number;
  /** A transitional function (revision 0, subsystem ID = device type). */
  readonly transitional: boolean;
  /** A PCI Express function. */
  readonly express: boolean;
  /** Whether the function has an INTx pin. */
  readonly intx: boolean;
  /** MSI-X table size (0: no MSI-X capability). */
  readonly msixVectors: number;
  /** Class code, or undefined for the device type's default. */
  readonly classCode: number | undefined;
  /** Subsystem Vendor ID, or undefined for 0x1af4. */
  readonly subsystemVendorId: number | undefined;
  /** Subsystem ID of a non-transitional function, or undefined for the default. */
  readonly subsystemId: number | undefined;
}

/** Power-on configuration space and where its capabilities with side effects are (0: absent). */
export interface FunctionConfig {
  /** The configuration space. */
  readonly config: ConfigSpace;
  /** Offset of the VIRTIO_PCI_CAP_PCI_CFG capability. */
  readonly pciCfgCap: number;
  /** Offset of the MSI-X capability. */
  readonly msixCap: number;
  /** Offset of the Power Management capability. */
  readonly pmCap: number;
}

/**
 * Builds a function's power-on configuration space: the type-0 header with the
 * IDs of spec 4.1.2, the BARs' type bits, and the capability list: the virtio
 * structures (spec 4.1.4), the PCI access window, MSI-X, and for PCI Express
 * Power Management and the Express capability. Throws on a bad subsystem ID.
 */
export function buildConfigSpace(device: VirtioDevice, layout: FunctionLayout, options: IdentityOptions): FunctionConfig {
  const c = new ConfigSpace(options.express ? PCIE_CONFIG_SPACE_SIZE : PCI_CONFIG_SPACE_SIZE);
  const { transitional } = options;
  c.set(PciConfig.VENDOR_ID, 2, VIRTIO_PCI_VENDOR_ID);
  c.set(PciConfig.DEVICE_ID, 2, options.deviceId);
  c.allowWrite(PciConfig.COMMAND, 2, PciCommand.IO | PciCommand.MEMORY | PciCommand.MASTER | PciCommand.INTX_DISABLE);
  // spec 4.1.2.1: revision 0 and subsystem ID = device type match legacy drivers; 1 and >= 0x40 keep them away.
  c.set(PciConfig.REVISION_ID, 1, transitional ? 0 : 1);
  const classCode = options.classCode ?? pciClassCode(device.deviceType);
  c.set(PciConfig.CLASS_PROG, 1, classCode & 0xff);
  c.set(PciConfig.CLASS_PROG + 1, 2, (classCode >>> 8) & 0xffff);
  c.allowWrite(PciConfig.CACHE_LINE_SIZE, 1, 0xff);
  const subsystemId = transitional ? device.deviceType : (options.subsystemId ?? 0x1100);
  if (!transitional && (!Number.isInteger(subsystemId) || subsystemId < 0x40 || subsystemId > 0xffff)) {
    throw new RangeError(`subsystemId ${subsystemId} must be 0x40..0xffff (spec 4.1.2.1)`);
  }
  c.set(PciConfig.SUBSYSTEM_VENDOR_ID, 2, transitional ? VIRTIO_PCI_VENDOR_ID : (options.subsystemVendorId ?? VIRTIO_PCI_VENDOR_ID));
  c.set(PciConfig.SUBSYSTEM_ID, 2, subsystemId);
  for (const bar of layout.bars) {
    for (let r = 0; r < bar.registers; r++) c.set(PciConfig.BASE_ADDRESS_0 + 4 * (bar.index + r), 4, bar.read(r));
  }
  c.allowWrite(PciConfig.INTERRUPT_LINE, 1, 0xff);
  c.set(PciConfig.INTERRUPT_PIN, 1, options.intx ? 1 : 0);

  const virtio = PciBarIndex.VIRTIO;
  addVirtioCap(c, VirtioPciCap.COMMON_CFG, virtio, 0, CommonCfg.SIZE);
  const notify = addVirtioCap(c, VirtioPciCap.NOTIFY_CFG, virtio, layout.notifyOffset, layout.notifyLength, 20);
  c.set(notify + VirtioPciCapField.NOTIFY_OFF_MULTIPLIER, 4, layout.multiplier);
  addVirtioCap(c, VirtioPciCap.ISR_CFG, virtio, ISR_OFFSET, 1);
  if (device.configSize > 0) addVirtioCap(c, VirtioPciCap.DEVICE_CFG, virtio, DEVICE_CFG_OFFSET, device.configSize);
  for (const region of layout.sharedRegions) {
    const cap = addVirtioCap(c, VirtioPciCap.SHARED_MEMORY_CFG, PciBarIndex.SHARED_MEMORY, region.offset % TWO_32, region.size % TWO_32, 24);
    c.set(cap + VirtioPciCapField.ID, 1, region.id);
    c.set(cap + VirtioPciCapField.OFFSET_HI, 4, Math.floor(region.offset / TWO_32));
    c.set(cap + VirtioPciCapField.LENGTH_HI, 4, Math.floor(region.size / TWO_32));
  }
  // spec 4.1.4.9: bar, offset, length and data of the access window are the driver's to write.
  const pciCfgCap = addVirtioCap(c, VirtioPciCap.PCI_CFG, 0, 0, 0, 20);
  c.allowWrite(pciCfgCap + VirtioPciCapField.BAR, 1, 0xff);
  c.allowWrite(pciCfgCap + VirtioPciCapField.OFFSET, 4, 0xffffffff);
  c.allowWrite(pciCfgCap + VirtioPciCapField.LENGTH, 4, 0xffffffff);
  c.allowWrite(pciCfgCap + VirtioPciCapField.PCI_CFG_DATA, 4, 0xffffffff);

  let msixCap = 0;
  if (options.msixVectors > 0) {
    msixCap = c.addCapability(PciCapabilityId.MSIX, Msix.CAP_SIZE);
    c.set(msixCap + Msix.FLAGS, 2, options.msixVectors - 1);
    c.allowWrite(msixCap + Msix.FLAGS, 2, Msix.FLAGS_ENABLE | Msix.FLAGS_MASKALL);
    c.set(msixCap + Msix.TABLE, 4, PciBarIndex.MSIX);
    c.set(msixCap + Msix.PBA, 4, layout.pbaOffset | PciBarIndex.MSIX);
  }
  let pmCap = 0;
  if (options.express) {
    pmCap = c.addCapability(PciCapabilityId.POWER_MANAGEMENT, PciPm.CAP_SIZE);
    c.set(pmCap + PciPm.PMC, 2, PciPm.PMC_VERSION_3);
    c.set(pmCap + PciPm.CTRL, 2, PciPm.CTRL_NO_SOFT_RESET);
    c.allowWrite(pmCap + PciPm.CTRL, 2, PciPm.CTRL_STATE_MASK);
    const express = c.addCapability(PciCapabilityId.EXPRESS, PciExpress.CAP_SIZE_V2);
    c.set(express + PciExpress.FLAGS, 2, PciExpress.FLAGS_VERSION_2 | PciExpress.FLAGS_TYPE_RC_END);
    c.set(express + PciExpress.DEVCAP, 4, PciExpress.DEVCAP_RBER);
    c.set(express + PciExpress.DEVCTL, 2, PciExpress.DEVCTL_DEFAULT);
    c.allowWrite(express + PciExpress.DEVCTL, 2, PciExpress.DEVCTL_WRITABLE);
  }
  return { config: c, pciCfgCap, msixCap, pmCap };
}

/** Appends a struct virtio_pci_cap (spec 4.1.4) of `capLength` bytes; returns its offset. */
function addVirtioCap(c: ConfigSpace, type: number, bar: number, offset: number, length: number, capLength = 16): number {
  const at = c.addCapability(PciCapabilityId.VENDOR, capLength);
  c.set(at + 2, 1, capLength);
  c.set(at + VirtioPciCapField.CFG_TYPE, 1, type);
  c.set(at + VirtioPciCapField.BAR, 1, bar);
  c.set(at + VirtioPciCapField.OFFSET, 4, offset);
  c.set(at + VirtioPciCapField.LENGTH, 4, length);
  return at;
}
