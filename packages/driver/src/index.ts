export type { DriverTransport, InterruptCause } from './transport.js';
export { CoreTransport, type CoreTransportOptions } from './transports/core.js';
