export { VhostUserServer, SocketInUseError, type VhostUserServerOptions } from './backend/server.js';
export { ProtocolFeature, Request, VHOST_USER_F_PROTOCOL_FEATURES } from './protocol/constants.js';
