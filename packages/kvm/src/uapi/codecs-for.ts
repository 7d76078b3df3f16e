/**
 * The uAPI codecs as one driver calls them (internal: not exported from the package). Every
 * function is the codec of the same name; an error it raises names `backend` (the driver's id,
 * `'kvm'` or `'kvm-sim'`) instead of the standalone codec's `'kvm-uapi'`. Each driver binds them
 * once, in its own `codecs.ts`, and imports codecs only from there.
 */
import { rebindCodecError } from './codec-error.js';
import { checkBuffer, i32, i64, toBigInt, u32, u64 } from './codec-util.js';
import * as structs from './structs.js';
import * as vcpuStructs from './vcpu-structs.js';

type Codec = (a: never, b: never, c: never) => unknown;

/** `fn`, re-raising its codec errors as `backend`'s. Fixed arity (no rest array) keeps the native hot path allocation-free. */
function rebound<F extends Codec>(fn: F, backend: string): F {
  const call = fn as unknown as (a: unknown, b: unknown, c: unknown) => unknown;
  return ((a: unknown, b: unknown, c: unknown) => {
    try {
      return call(a, b, c);
    } catch (e) {
      throw rebindCodecError(e, backend);
    }
  }) as unknown as F;
}

/** Every codec a driver uses, raising errors as `backend`. */
export function codecsFor(backend: string) {
  const r = <F extends Codec>(fn: F): F => rebound(fn, backend);
  return {
    toBigInt: r(toBigInt),
    u64: r(u64),
    i64: r(i64),
    u32: r(u32),
    i32: r(i32),
    checkBuffer: r(checkBuffer),
    encodeKvmCreateGuestMemfd: r(structs.encodeKvmCreateGuestMemfd),
    decodeKvmCreateGuestMemfd: r(structs.decodeKvmCreateGuestMemfd),
    encodeKvmUserspaceMemoryRegion: r(structs.encodeKvmUserspaceMemoryRegion),
    decodeKvmUserspaceMemoryRegion: r(structs.decodeKvmUserspaceMemoryRegion),
    encodeKvmUserspaceMemoryRegion2: r(structs.encodeKvmUserspaceMemoryRegion2),
    decodeKvmUserspaceMemoryRegion2: r(structs.decodeKvmUserspaceMemoryRegion2),
    encodeKvmMemoryAttributes: r(structs.encodeKvmMemoryAttributes),
    decodeKvmMemoryAttributes: r(structs.decodeKvmMemoryAttributes),
    encodeKvmPreFaultMemory: r(structs.encodeKvmPreFaultMemory),
    decodeKvmPreFaultMemory: r(structs.decodeKvmPreFaultMemory),
    encodeKvmRegs: r(vcpuStructs.encodeKvmRegs),
    decodeKvmRegs: r(vcpuStructs.decodeKvmRegs),
    encodeKvmSregs: r(vcpuStructs.encodeKvmSregs),
    decodeKvmSregs: r(vcpuStructs.decodeKvmSregs),
    decodeKvmRunExit: r(vcpuStructs.decodeKvmRunExit),
  };
}
