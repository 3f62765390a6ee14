export { Virtio__Name__, VIRTIO___NAME___DEVICE_ID, type Virtio__Name__Options } from './device.js';
