// Preloaded by the no-koffi test: makes `koffi` unresolvable, as where the optional peer dependency is not installed.
import { register } from 'node:module';

register(
  'data:text/javascript,' +
    encodeURIComponent(`export async function resolve(specifier, context, next) {
  if (specifier === 'koffi') throw Object.assign(new Error("Cannot find package 'koffi'"), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(specifier, context);
}`),
);
