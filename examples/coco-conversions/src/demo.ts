/**
 * The walkthrough `npm start` runs: a CoCo guest's life on the simulated kernel, with the VMM's
 * conversion handler (`vmm.ts`) doing the work, and the neutral API's view of the same thing.
 */
import { registerCore, HYPERVISOR_REGISTRY, type HypervisorRegistry } from '@guestmem/core';
import { KVM_MEMORY_EXIT_FLAG_PRIVATE, registerKvm } from '@guestmem/kvm';
import { container } from 'tsyringe';
import { CocoHarness, RAM_GPA } from './harness.js';

const P = 4096;
const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

export interface DemoResult {
  faults: number;
  privateExits: number;
  poisonCode: string;
  leakedBytes: number;
  sharedRunsAtEnd: number;
}

export function runCocoDemo(log: (line: string) => void = console.log): DemoResult {
  const h = new CocoHarness();
  const page = (n: number) => RAM_GPA + BigInt(n * P);

  // 1. A shared bounce buffer: the guest writes, the host (device emulation) reads.
  h.access(page(0), 8, 'shared', 0x42);
  log(`shared page 0, host reads: ${hex(h.hostRead(page(0), 8))}`);

  // 2. The guest accepts page 1 as private: the first private touch is a KVM_EXIT_MEMORY_FAULT the
  //    VMM answers by converting; the retried access succeeds.
  h.access(page(1), 8, 'shared', 0x17); // leftover shared data the conversion must not expose
  h.access(page(1), 8, 'private', 0xee);
  const f = h.faults.at(-1)!;
  log(
    `memory fault: exit_reason ${f.exitReason}, flags 0x${f.memoryFault.flags.toString(16)}, gpa 0x${f.memoryFault.gpa.toString(16)}, size ${f.memoryFault.size}`,
  );
  log(`private page 1, guest reads: ${hex(h.access(page(1), 8, 'private'))}`);
  log(`private page 1, host reads:  ${hex(h.hostRead(page(1), 8))} (shared copy discarded, secret not visible)`);

  // 3. The guest shares page 1 again: the VMM punches the private copy; private data is gone for good.
  h.access(page(1), 8, 'shared');
  log(`page 1 shared again, host reads: ${hex(h.hostRead(page(1), 8))}`);
  log(`page 1 private again, guest reads: ${hex(h.access(page(1), 8, 'private'))} (punched: fresh zero page)`);

  // 4. A memory failure on a private page: KVM reports EHWPOISON, not a conversion request.
  h.access(page(2), 1, 'private', 1);
  h.memfd.markPoisoned(2 * P);
  let poisonCode = 'none';
  try {
    h.access(page(2), 1, 'private');
  } catch (e) {
    poisonCode = (e as { code: string }).code;
  }
  log(`poisoned private page 2: KVM_RUN failed with ${poisonCode}`);

  const privateExits = h.faults.filter((x) => x.memoryFault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE).length;
  log(
    `${h.faults.length} memory-fault exits (${privateExits} private), ${h.manager.stats.toPrivate} to private, ${h.manager.stats.toShared} to shared`,
  );
  h.close();
  const leakedBytes = h.bytesInUse();
  log(`after teardown: ${leakedBytes} bytes in use`);

  // 5. The same thing through the neutral API: a confidential VM of 'kvm-sim', and the shared/private
  //    tracker a VMM hangs its IOMMU/DMA mappings on (map only shared pages).
  const c = container.createChildContainer();
  registerCore(c);
  registerKvm(c, { driver: 'sim' });
  const hv = c.resolve<HypervisorRegistry>(HYPERVISOR_REGISTRY).open('kvm-sim');
  const vm = hv.createVm({ confidential: true });
  const mem = vm.createGuestMemory({ size: 16 * P });
  vm.bind({ memory: mem, offset: 0, gpa: RAM_GPA, size: 16 * P, access: 'private' });
  const dma = new Set<number>();
  vm.memoryState.onChange((ch) => {
    for (let g = ch.first; g < ch.end; g++) ch.to === 'shared' ? dma.add(g) : dma.delete(g);
    log(`  tracker: gfns [0x${ch.first.toString(16)}, 0x${ch.end.toString(16)}) ${ch.from} → ${ch.to}; ${dma.size} pages DMA-mapped`);
  });
  vm.convert({ gpa: RAM_GPA, size: 4 * P }, 'shared');
  vm.guestWrite(RAM_GPA, new Uint8Array([1, 2, 3]));
  vm.convert({ gpa: RAM_GPA + BigInt(P), size: P }, 'private');
  const sharedRunsAtEnd = vm.memoryState
    .runs(Number(RAM_GPA / 4096n), Number(RAM_GPA / 4096n) + 16)
    .filter((r) => r.state === 'shared').length;
  vm.destroy();
  mem.close();
  hv.close();
  return { faults: h.faults.length, privateExits, poisonCode, leakedBytes, sharedRunsAtEnd };
}
