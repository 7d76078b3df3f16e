/**
 * How the uAPI codecs raise errors (internal: not exported from the package). A codec error is
 * made once with {@link UAPI_CODEC_BACKEND}; each driver calls the codecs through
 * `codecsFor(its id)` (`codecs-for.ts`), which re-raises it under the driver's id.
 */
import { GuestMemError, type GuestMemErrorOptions } from '@guestmem/core';

/**
 * The backend id of an error raised by a codec called on its own, outside any driver. Each driver
 * calls the codecs through `codecsFor(its id)`, so an error reaching a caller of
 * `openKvm()` names that driver (`'kvm'` or `'kvm-sim'`), never this id.
 */
export const UAPI_CODEC_BACKEND = 'kvm-uapi';

/** What each codec error was made from, so a driver can re-raise it under its own backend id. */
const codecErrorOptions = new WeakMap<GuestMemError, GuestMemErrorOptions>();

/** Every codec error is made here (and remembered for {@link rebindCodecError}). */
export function codecError(opts: Omit<GuestMemErrorOptions, 'backend'>): GuestMemError {
  const full = { ...opts, backend: UAPI_CODEC_BACKEND };
  const e = new GuestMemError(full);
  codecErrorOptions.set(e, full);
  return e;
}

/**
 * `e` as `backend` raised it: a codec error is re-made with that backend id (same code, op,
 * detail, info and stack frames); anything else is returned unchanged.
 */
export function rebindCodecError(e: unknown, backend: string): unknown {
  const opts = e instanceof GuestMemError ? codecErrorOptions.get(e) : undefined;
  if (opts === undefined || opts.backend === backend) return e;
  const out = new GuestMemError({ ...opts, backend });
  const frames = (e as Error).stack?.indexOf('\n    at ') ?? -1;
  if (frames >= 0) out.stack = `${out.name}: ${out.message}${(e as Error).stack?.slice(frames)}`;
  return out;
}
