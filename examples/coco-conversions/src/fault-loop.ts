/**
 * A confidential guest's memory, served by faults, written once against the neutral API and run on
 * every backend with private memory: the simulated KVM (`KVM_X86_SW_PROTECTED_VM`) and the
 * simulated Gunyah (v17). The VMM is `runGuest` with its default fault service:
 *
 * 1. **demand paging**: guest RAM is not bound up front. The guest's first touch of each granule
 *    exits (KVM: KVM_EXIT_MEMORY_FAULT for a private access with no memslot, after the attribute
 *    mismatch; Gunyah v17: GUNYAH_VCPU_EXIT_MMIO, since an address no binding backs is a VMMIO
 *    access there) and the loop binds a granule of the VMM's backing memory there — private — and
 *    re-executes the access (KVM: the retried fault; Gunyah: `mmio.resume_action` RETRY, whose
 *    kernel comment is "userspace probably added a memory binding");
 * 2. **explicit conversion**: the guest asks for a page to be shared (a write of the page number
 *    to {@link SHARE_PORT}, standing for SNP's page-state change / TDX MapGPA / Gunyah's share
 *    hypercall); the `onIo` handler converts it and the guest fills it as a bounce buffer the host
 *    then reads through `vm.sharedView`;
 * 3. **implicit conversion** (KVM): a shared access to a private page is a KVM_EXIT_MEMORY_FAULT
 *    wanting shared; the same fault service converts the page in place and the retried access
 *    succeeds. Gunyah's fault record carries no access type, so there the guest asks explicitly.
 */
import { GuestProgram, buildGuestImage, loadGuest, runGuest, type Hypervisor, type RunGuestResult } from '@guestmem/core';

const P = 4096;
/** Where the guest's RAM lives (above 4 GiB); nothing is bound there before the guest runs. */
export const RAM_GPA = 0x1_0000_0000n;
export const RAM_PAGES = 16;
/** The guest writes a RAM page number here to ask for that page to be shared. */
export const SHARE_PORT = 0x20;
/** Memory the image (page tables, code) lives in: shared, bound up front. */
const IMAGE = { gpa: 0n, size: 1 << 20 };
/** Pages bound per demand fault. */
const GRANULE = 4 * P;

const page = (n: number) => RAM_GPA + BigInt(n * P);

/** The guest: touch its RAM privately, share page 0 explicitly and fill it, then write page 5 shared. */
export function cocoGuest(opts: { implicit: boolean }): GuestProgram {
  const p = new GuestProgram()
    .print('guest: touching my private RAM\n')
    .view('private')
    .touch(RAM_GPA, RAM_PAGES * P, 'write', 0xee)
    .print('guest: sharing page 0 as a bounce buffer\n')
    .out(SHARE_PORT, 0)
    .view('shared')
    .fill(page(0), P, 0x42);
  if (opts.implicit) p.print('guest: shared access to private page 5\n').store(page(5), new TextEncoder().encode('to the host'));
  return p.print('guest: done\n').hlt();
}

export interface FaultLoopResult {
  backend: string;
  run: RunGuestResult;
  /** The first bytes of the bounce buffer as the host reads them. */
  bounce: number[];
  /** What the host reads of page 5 after the implicit conversion (KVM), or why it cannot (Gunyah). */
  page5: string;
  /** Page states over the guest's RAM at the end. */
  privatePages: number;
  sharedPages: number;
}

/** Runs {@link cocoGuest} on `hv` with the neutral fault-driven loop. Closes nothing of `hv`. */
export function runFaultDrivenGuest(hv: Hypervisor, log: (s: string) => void = console.log): FaultLoopResult {
  const vm = hv.createVm({ confidential: true });
  try {
    const image = vm.createGuestMemory({ size: IMAGE.size });
    vm.bind({ memory: image, offset: 0, gpa: IMAGE.gpa, size: IMAGE.size, access: 'shared' });
    // The VMM's backing for guest RAM: bound a granule at a time, when the guest faults.
    const ram = vm.createGuestMemory({ size: RAM_PAGES * P });
    // KVM's fault record says which access the guest wanted; Gunyah's does not (explicit only).
    const implicit = hv.capabilities.has('convert-in-place');
    const vcpu = vm.createVcpu();
    let explicit = 0;
    loadGuest(vm, vcpu, buildGuestImage(cocoGuest({ implicit })));
    const run = runGuest(vm, vcpu, {
      backing: { memory: ram, base: RAM_GPA, granule: GRANULE },
      onIo: (e) => {
        if (e.port !== SHARE_PORT) return;
        vm.convert({ gpa: page(e.data[0]!), size: P }, 'shared');
        explicit++;
      },
    });
    // The loop counts the conversions its fault service made; add the ones the guest asked for.
    run.conversions += explicit;
    for (const l of run.output.split('\n').filter(Boolean)) log(`  | ${l}`);
    const view = vm.sharedView({ gpa: page(0), size: P });
    const bounce = [...view.read(0, 8)];
    view.unmap();
    let page5: string;
    try {
      const v = vm.sharedView({ gpa: page(5), size: P });
      page5 = JSON.stringify(new TextDecoder().decode(v.read(0, 11)));
      v.unmap();
    } catch (e) {
      page5 = `not readable by the host (${(e as { code?: string }).code})`;
    }
    const runs = vm.memoryState.runs(Number(RAM_GPA / 4096n), Number(RAM_GPA / 4096n) + RAM_PAGES);
    const count = (s: string) => runs.filter((r) => r.state === s).reduce((a, r) => a + r.end - r.first, 0);
    const result = { backend: hv.id, run, bounce, page5, privatePages: count('private'), sharedPages: count('shared') };
    log(
      `  ${run.faults} memory faults served: ${run.pagesMapped} pages mapped on demand, ${run.conversions} conversions; stopped by ${run.stoppedBy}`,
    );
    log(`  host reads the bounce buffer: ${bounce.map((b) => b.toString(16)).join(' ')}; page 5: ${page5}`);
    log(`  guest RAM now: ${result.privatePages} private, ${result.sharedPages} shared pages`);
    return result;
  } finally {
    vm.destroy();
  }
}
