import { coreTransportFactory } from '../transport-factory.js';
import { describeResetCompletion, describeVirtioConformance, loopbackConformance } from './index.js';

describeVirtioConformance(loopbackConformance('LoopbackDevice conformance'));
describeResetCompletion([coreTransportFactory]);
