// Placeholder: the simulated kernel is written by another engineer against ../api.ts and replaces
// this file. It must export `openSimKvm(opts)`.
import { GuestMemError } from '@guestmem/core';
import type { Kvm, KvmProfile } from '../api.js';

export function openSimKvm(opts: { profile?: KvmProfile } = {}): Kvm {
  throw new GuestMemError({
    code: 'ENOSYS',
    op: 'openKvm',
    backend: 'kvm-sim',
    detail: 'simulated kernel not built yet',
    info: { profile: opts.profile ?? '6.18' },
  });
}
