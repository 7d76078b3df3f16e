/**
 * `guestmem demo`: the main job. One VMM-shaped scenario, written once against the neutral API,
 * run on every backend that is available here (the real KVM, the simulated KVM, simulated Gunyah).
 */
import { GuestMemError, type Hypervisor } from '@guestmem/core';
import { runDemo } from './demo-report.js';
import { formatMemoryReport } from './format-memory-report.js';

const MiB = 1024 * 1024;
const GPA = 0x4000_0000n; // 1 GiB

/**
 * The demo as text: the guest on every available backend (the best first), then the API tour
 * ({@link runScenario}) on each; `only` limits it to one backend id. Same as `guestmem demo`.
 */
export function demo(log: (s: string) => void = console.log, only?: string): void {
  runDemo({ hypervisor: only }, log);
}

export function runScenario(h: Hypervisor, log: (s: string) => void): void {
  const caps = h.capabilities;
  log(`capabilities: ${caps.list().join(', ')}`);
  const confidential = caps.has('private-memory');
  const vm = h.createVm({ confidential });
  // What the VM offers (a confidential VM may lack INIT_SHARED even where the hypervisor has it).
  const mappable = vm.capabilities.has('host-map') && vm.capabilities.has('initially-shared');
  const mem = vm.createGuestMemory({ size: 16 * MiB, hostMappable: mappable, initiallyShared: mappable });
  log(`created 16 MiB of guest memory (id ${mem.id}${mappable ? ', host-mappable, initially shared' : ''})`);
  mem.allocate(0, 8 * MiB);
  log('allocated the first 8 MiB (fallocate)');
  const binding = vm.bind({ memory: mem, offset: 0, gpa: GPA, size: 8 * MiB, access: 'shared' });
  log(`bound [0, 8 MiB) of it at GPA 0x${binding.gpa.toString(16)}`);

  const image = new TextEncoder().encode('guestmem boot image');
  if (mappable) {
    const view = mem.map({ length: 8 * MiB });
    log(`host view, first read: ${hex(view.read(0, 8))} (zero on first use)`);
    view.write(0, image);
    log(`host wrote a ${image.length}-byte boot image`);
    if (caps.has('guest-access')) log(`guest reads at GPA: "${new TextDecoder().decode(vm.guestRead(GPA, image.length))}"`);
    if (caps.has('punch-hole')) {
      mem.punchHole(0, 4096);
      log(`after punch-hole of page 0 the host reads ${hex(view.read(0, 8))}`);
    } else {
      log('no punch-hole on this backend (its guest memory is plain host memory)');
    }
    view.unmap();
  } else if (caps.has('guest-access')) {
    // On a confidential VM the guest_memfd holds the *private* pages (shared ones live in host
    // memory), so make page 0 private for the punch-hole step to act on what the guest sees.
    if (vm.capabilities.has('convert-in-place')) {
      vm.convert({ gpa: GPA, size: 4096 }, 'private');
      log('converted page 0 to private (its data now lives in the guest memory object)');
    }
    log(`guest first read at GPA: ${hex(vm.guestRead(GPA, 8))} (zero on first use)`);
    vm.guestWrite(GPA, image);
    log(`guest wrote "${new TextDecoder().decode(vm.guestRead(GPA, image.length))}"`);
    mem.punchHole(0, 4096);
    log(`after punch-hole of page 0 the guest reads ${hex(vm.guestRead(GPA, 8))}`);
  }

  const canConvert = vm.capabilities.has('convert-in-place') || vm.capabilities.has('convert-remap');
  vm.memoryState.onChange((c) => log(`state listener: GFNs [0x${c.first.toString(16)}, 0x${c.end.toString(16)}) ${c.from} → ${c.to}`));
  let converted = false;
  try {
    vm.convert({ gpa: GPA, size: 2 * MiB }, 'private');
    converted = true;
    log('converted the first 2 MiB to private');
    if (caps.has('guest-access')) vm.guestWrite(GPA, new TextEncoder().encode('guest secret'));
  } catch (e) {
    if (!(e instanceof GuestMemError)) throw e;
    log(`convert to private: ${e.code}${canConvert ? '' : ' (no conversion capability on this VM)'}`);
  }

  // The host must never read private memory: the converted range, or else memory created private.
  const target =
    converted && mappable ? mem : vm.capabilities.has('host-map') ? vm.createGuestMemory({ size: 4096, hostMappable: true }) : undefined;
  if (target && target !== mem && !canConvert && vm.capabilities.has('private-memory') && caps.has('guest-access')) {
    // No conversion (Gunyah ACK): memory is private because it is bound private (lent) from the start.
    const gpa = GPA + 16n * BigInt(MiB);
    vm.bind({ memory: target, offset: 0, gpa, size: 4096, access: 'private' });
    vm.guestWrite(gpa, new TextEncoder().encode('guest secret'));
    log(`bound a page private at GPA 0x${gpa.toString(16)}; the guest wrote a secret into it`);
  }
  if (target) {
    try {
      const view = target.map({ length: 4096 });
      try {
        view.read(0, 1);
        log('!! host read private memory');
      } finally {
        view.unmap();
      }
    } catch (e) {
      if (!(e instanceof GuestMemError)) throw e;
      log(`host read of private guest memory refused: ${e.code}`);
    }
    if (target !== mem) target.close();
  }

  for (const line of formatMemoryReport(vm.memoryReport())) log(line);
  vm.destroy();
  log(`VM destroyed; binding active: ${binding.active}`);
  mem.close();
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex').replace(/(..)/g, '$1 ').trim();
}
