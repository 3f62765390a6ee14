import { DeviceStatus } from '@virtio-ts/virtqueue';

/** Reserved feature bits by number (spec 6), for messages and traces. */
const RESERVED_FEATURE_NAMES: Readonly<Record<number, string>> = {
  24: 'NOTIFY_ON_EMPTY',
  27: 'ANY_LAYOUT',
  28: 'INDIRECT_DESC',
  29: 'EVENT_IDX',
  32: 'VERSION_1',
  33: 'ACCESS_PLATFORM',
  34: 'RING_PACKED',
  35: 'IN_ORDER',
  36: 'ORDER_PLATFORM',
  37: 'SR_IOV',
  38: 'NOTIFICATION_DATA',
  39: 'NOTIF_CONFIG_DATA',
  40: 'RING_RESET',
  41: 'ADMIN_VQ',
  43: 'SUSPEND',
};

/** Status bits in the order the initialisation sequence sets them (spec 3.1.1), SUSPEND (spec 3.4), then the error bits. */
const STATUS_ORDER = ['ACKNOWLEDGE', 'DRIVER', 'FEATURES_OK', 'DRIVER_OK', 'SUSPEND', 'DEVICE_NEEDS_RESET', 'FAILED'] as const;

/** The device status field as its bit names, e.g. `ACKNOWLEDGE|DRIVER` (spec 2.1); `0` reads as `RESET`. */
export function statusNames(status: number): string {
  if (status === 0) return 'RESET';
  const names: string[] = STATUS_ORDER.filter((name) => (status & DeviceStatus[name]) !== 0);
  const unknown = status & ~STATUS_ORDER.reduce((mask, name) => mask | DeviceStatus[name], 0);
  if (unknown !== 0) names.push(`0x${unknown.toString(16)}`);
  return names.join('|');
}

/** Feature bits as names: reserved bits by their spec name, device-specific bits as `bit<N>`. */
export function featureNames(features: bigint): string {
  const names: string[] = [];
  for (let bit = 0; features >> BigInt(bit) !== 0n; bit++) {
    if (((features >> BigInt(bit)) & 1n) === 1n) names.push(RESERVED_FEATURE_NAMES[bit] ?? `bit${bit}`);
  }
  return names.length === 0 ? '(none)' : names.join(' ');
}
