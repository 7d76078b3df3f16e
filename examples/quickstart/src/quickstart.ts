/**
 * guestmem core in five minutes. Everything here is hypervisor-neutral: the same file object sits
 * under KVM's guest_memfd and Gunyah's guest-mem in the backend packages.
 */
import {
  ArenaFolioAllocator,
  GuestMemError,
  GuestMemFile,
  HostAccessFault,
  HostMapping,
  RangeStateMap,
  type GuestMemOps,
} from '@guestmem/core';

const MiB = 1024 * 1024;

export function runQuickstart(log: (line: string) => void = console.log): void {
  // One allocator accounts every folio (like /proc/meminfo's Unevictable line).
  const allocator = new ArenaFolioAllocator({ limitBytes: 64 * MiB });

  // A backend gives the file its policy through hooks. This one lets the host touch every page
  // and logs invalidations (where KVM would zap guest page tables).
  const ops: GuestMemOps<string> = {
    backend: 'quickstart',
    invalidateBegin: (_f, r, why) => log(`  invalidate pages [${r.first}, ${r.end}) because of ${why}`),
  };

  log('1. Create a 16 MiB guest-memory file: nothing is allocated yet.');
  const file = GuestMemFile.create(16 * MiB, 0, ops, { allocator });
  log(`   ${file.pages} pages, ${file.pagesPresent} present, ${allocator.stats().bytesInUse} bytes in use`);

  log('2. fallocate the first 4 MiB: folios are allocated but not zeroed until first use.');
  file.allocate(0, 4 * MiB);
  log(`   ${file.pagesPresent} pages present, ${allocator.stats().bytesInUse / MiB} MiB in use`);

  log('3. Map it for the host (the mmap analogue) and write a pattern.');
  const view = new HostMapping(file, { length: 16 * MiB });
  log(`   first read of page 0: ${hex(view.read(0, 8))} (zero on first use)`);
  view.fill(0, 8192, 0xaa);
  log(`   after memset 0xaa: ${hex(view.read(4096, 8))}`);

  log('4. Punch a hole over page 0: the view reads zero again, never the old bytes.');
  file.punchHole(0, 4096);
  log(`   page 0: ${hex(view.read(0, 8))}   page 1: ${hex(view.read(4096, 8))}`);

  log('5. Bind pages to owners (a KVM memslot, a Gunyah mapping): overlaps fail with the errno the backend picks.');
  file.bind(0, 256, 'slot 0');
  try {
    file.bind(128, 512, 'slot 1', { overlapCode: 'EEXIST' });
  } catch (e) {
    if (e instanceof GuestMemError) log(`   ${e.code} (errno ${e.errno}): ${e.message}`);
  }

  log('6. Host access past EOF is refused with a typed SIGBUS error instead of killing the process.');
  const tooLong = new HostMapping(file, { offset: 15 * MiB, length: 2 * MiB });
  try {
    tooLong.read(MiB, 1);
  } catch (e) {
    if (e instanceof HostAccessFault) log(`   ${e.code} at file offset ${e.offset}: ${e.message}`);
  }
  tooLong.unmap();

  log('7. Track shared/private state per page with listeners (what QEMU and Cloud Hypervisor hand-roll).');
  const state = new RangeStateMap<'shared' | 'private'>('shared', file.pages);
  state.onChange((c) => log(`   pages [${c.first}, ${c.end}) ${c.from} → ${c.to}`));
  state.set(0, 512, 'private');
  state.set(256, 1024, 'shared');

  log('8. Release: the mapping and the file each hold a reference; the last release frees everything.');
  view.unmap();
  file.release();
  const s = allocator.stats();
  log(`   ${s.bytesInUse} bytes in use (peak ${s.peakBytes / MiB} MiB)`);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex').replace(/(..)/g, '$1 ').trim();
}
