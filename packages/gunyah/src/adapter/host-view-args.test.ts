/**
 * Host views (`GuestMemory.map`, `Vm.sharedView`) on every simulated backend (kvm-sim, gunyah v17
 * sim, gunyah ACK sim A/B/C) answer bad arguments with the same GuestMemError code everywhere
 * (EINVAL / EFAULT), never a RangeError or TypeError. Also: a good `readInto` equals `read` + copy
 * on every backend, and a view refuses everything after unmap (EFAULT).
 */
import { GuestMemError, type HostView, type Hypervisor } from '@guestmem/core';
import { describe, expect, it } from 'vitest';
import { openKvmHypervisor } from '../../../kvm/src/adapter/register.js';
import { GunyahAckHypervisor } from '../ack/adapter/index.js';
import { GunyahHypervisor } from './gunyah-hypervisor.js';

const P = 4096;
const G = 0x8000_0000;

const backends: Array<[string, () => Hypervisor]> = [
  ['kvm-sim', () => openKvmHypervisor({ driver: 'sim' })],
  ['gunyah-v17', () => new GunyahHypervisor()],
  ['ack-A', () => new GunyahAckHypervisor({ generation: 'A' })],
  ['ack-B', () => new GunyahAckHypervisor({ generation: 'B' })],
  ['ack-C', () => new GunyahAckHypervisor({ generation: 'C' })],
];

const bad: unknown[] = [
  Number.NaN,
  -1,
  2 ** 53,
  2 ** 53 - 1,
  1.5,
  '1',
  1n,
  Number.POSITIVE_INFINITY,
  undefined,
  null,
  {},
  -0,
  3 * P,
  3 * P + 1,
];

const code = (f: () => unknown): string => {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (GuestMemError.is(e)) return e.code;
    return `${(e as Error).constructor.name}: ${(e as Error).message}`;
  }
};

function views(make: () => Hypervisor): { h: Hypervisor; list: Array<[string, HostView]> } {
  const h = make();
  const vm = h.createVm();
  const m = vm.createGuestMemory({ size: 4 * P, hostMappable: true, initiallyShared: true });
  vm.bind({ memory: m, offset: 0, gpa: G, size: 4 * P, access: 'shared' });
  const mv = m.map({ offset: P, length: 3 * P });
  const sv = vm.sharedView({ gpa: G + P, size: 3 * P });
  return {
    h,
    list: [
      ['map', mv],
      ['shared', sv],
    ],
  };
}

function matrix(make: () => Hypervisor): Record<string, string> {
  const out: Record<string, string> = {};
  const { h, list } = views(make);
  try {
    for (const [name, v] of list) {
      for (const x of bad) {
        const k = typeof x === 'bigint' ? `${x}n` : typeof x === 'string' ? `'${x}'` : Object.is(x, -0) ? '-0' : String(x);
        out[`${name}.read(at=${k})`] = code(() => v.read(x as number, 1));
        out[`${name}.read(len=${k})`] = code(() => v.read(0, x as number));
        out[`${name}.readInto(at=${k})`] = code(() => v.readInto(x as number, new Uint8Array(1)));
        out[`${name}.readInto(dstOffset=${k})`] = code(() => v.readInto(0, new Uint8Array(2), x as number));
        out[`${name}.write(at=${k})`] = code(() => v.write(x as number, Uint8Array.of(1)));
        out[`${name}.fill(at=${k})`] = code(() => v.fill(x as number, 1, 0));
        out[`${name}.fill(len=${k})`] = code(() => v.fill(0, x as number, 0));
        out[`${name}.fill(byte=${k})`] = code(() => v.fill(0, 1, x as number));
      }
      out[`${name}.write(data=[1])`] = code(() => v.write(0, [1] as unknown as Uint8Array));
      out[`${name}.readInto(dst=[0])`] = code(() => v.readInto(0, [0] as unknown as Uint8Array));
      out[`${name}.readInto(past end)`] = code(() => v.readInto(3 * P - 1, new Uint8Array(2)));
      // a good readInto = read + copy
      v.write(10, Uint8Array.of(7, 8, 9));
      const dst = new Uint8Array(6).fill(0xee);
      v.readInto(10, dst, 2);
      out[`${name}.readInto good`] =
        JSON.stringify([...dst]) === JSON.stringify([0xee, 0xee, 7, 8, 9, ...v.read(13, 1)]) ? 'same' : `differs ${[...dst]}`;
      v.unmap();
      out[`${name}.after unmap read`] = code(() => v.read(0, 1));
      out[`${name}.after unmap readInto`] = code(() => v.readInto(0, new Uint8Array(1)));
    }
  } finally {
    h.close();
  }
  return out;
}

describe('host-view argument checks on every simulated backend', () => {
  const ref = matrix(backends[0]![1]);
  it('kvm-sim: only GuestMemError codes', () => {
    for (const [k, v] of Object.entries(ref)) expect([k, v]).toEqual([k, expect.stringMatching(/^(EINVAL|EFAULT|ok|same)$/)]);
  });
  for (const [name, make] of backends.slice(1)) {
    it(`${name} answers as kvm-sim`, () => {
      expect(matrix(make)).toEqual(ref);
    });
  }
});
