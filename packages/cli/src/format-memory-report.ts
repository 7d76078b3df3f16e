import type { VmMemoryReport } from '@guestmem/core';

const KiB = 1024n;

function bytes(n: bigint): string {
  if (n >= KiB * KiB && n % (KiB * KiB) === 0n) return `${n / (KiB * KiB)} MiB`;
  if (n >= KiB && n % KiB === 0n) return `${n / KiB} KiB`;
  return `${n} B`;
}

/** `Vm.memoryReport()` as lines, one per memory object plus totals (what `guestmem demo` prints). */
export function formatMemoryReport(r: VmMemoryReport): string[] {
  const lines = [`memory report of VM ${r.vmId} (${r.backend}):`];
  for (const m of r.memories) {
    const ranges = m.boundRanges.map((b) => `0x${b.gpa.toString(16)}+${bytes(b.size)}`).join(', ') || 'none';
    lines.push(
      `  memory ${m.id}: size ${bytes(m.size)}, allocated ${bytes(m.allocatedBytes)} (${m.accounting}), resident ${bytes(m.residentBytes)}, host-mapped ${bytes(m.hostMappedBytes)}, ` +
        `private/shared pages ${m.privatePages}/${m.sharedPages}, huge folios ${m.hugeFolios}, bound at ${ranges}`,
    );
  }
  const t = r.totals;
  lines.push(
    `  total: size ${bytes(t.size)}, allocated ${bytes(t.allocatedBytes)}, bound ${bytes(t.boundBytes)}, private/shared pages ${t.privatePages}/${t.sharedPages}`,
  );
  return lines;
}
