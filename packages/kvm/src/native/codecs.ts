/** The uAPI codecs as the native driver calls them: their errors name {@link NATIVE_BACKEND}. */
import { codecsFor } from '../uapi/codecs-for.js';
import { NATIVE_BACKEND } from './errors.js';

export const {
  i32,
  i64,
  u64,
  encodeKvmCreateGuestMemfd,
  encodeKvmMemoryAttributes,
  encodeKvmUserspaceMemoryRegion,
  encodeKvmUserspaceMemoryRegion2,
  decodeKvmMemoryAttributes,
  decodeKvmUserspaceMemoryRegion,
  decodeKvmUserspaceMemoryRegion2,
  encodeKvmRegs,
  encodeKvmSregs,
  decodeKvmRegs,
  decodeKvmSregs,
  decodeKvmRunExit,
} = codecsFor(NATIVE_BACKEND);
