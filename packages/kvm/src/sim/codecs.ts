/** The uAPI codecs as the simulated kernel calls them: their errors name {@link SIM_BACKEND}. */
import { codecsFor } from '../uapi/codecs-for.js';
import { SIM_BACKEND } from './errors.js';

export const {
  i32,
  i64,
  u64,
  encodeKvmCreateGuestMemfd,
  decodeKvmCreateGuestMemfd,
  encodeKvmMemoryAttributes,
  decodeKvmMemoryAttributes,
  encodeKvmUserspaceMemoryRegion,
  decodeKvmUserspaceMemoryRegion,
  encodeKvmUserspaceMemoryRegion2,
  decodeKvmUserspaceMemoryRegion2,
} = codecsFor(SIM_BACKEND);
