export { FileBackend, ImageError, type FileBackendOptions } from './file-backend.js';
