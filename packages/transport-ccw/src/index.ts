export {
  BlockSize,
  CLASSIC_INDICATOR_BITS,
  CcwCommand,
  CcwFlag,
  ConditionCode,
  KVM_S390_VIRTIO_CCW_NOTIFY,
  MAX_ISC,
  SENSE_DATA_SIZE,
  SENSE_ID_SIZE,
  SenseByte0,
  StatusControl,
  SubchannelStatus,
  UnitStatus,
  VIRTIO_CCW_CU_TYPE,
  VirtioCcwRevision,
} from './constants.js';
export { MAX_CCWS_PER_PROGRAM, type InterruptionResponse } from './subchannel.js';
export { CcwTransport, type ChannelSubsystem, type CcwTransportOptions } from './transport.js';
export { diagnose500, type Diagnose500Registers } from './diagnose.js';
