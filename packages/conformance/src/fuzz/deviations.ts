/**
 * Known deviations: places where a backend does not (yet) keep a rule the model encodes. Each one is
 * named, says which issue item settles it, and is tolerated only by the fuzz targets that list it,
 * so the fuzz run stays at 0 counterexamples while the rule is pending. Each also has a named
 * regression test (`regressions.test.ts`) that runs the model strictly and is marked `it.fails`
 * until the backend follows the rule: when such a test starts passing, vitest reports it, and the
 * deviation is dropped from the target and the test flipped to `it`.
 */
export type DeviationId =
  | 'views-survive-hypervisor-close'
  | 'guest-access-bad-gpa-efault'
  | 'error-backend-id'
  | 'punch-past-end-succeeds'
  | 'range-errno'
  | 'map-past-end-succeeds'
  | 'huge-bind-needs-2mib'
  | 'file-overlap-einval'
  | 'private-by-default-host-readable'
  | 'lent-untouched-host-accessible'
  | 'shared-keeps-private-bytes'
  | 'reserved-dtb-gpa'
  | 'map-refused-while-lent'
  | 'guest-fault-while-host-mapped'
  | 'gpa-above-host-phys-bits'
  | 'shared-data-lives-in-binding'
  | 'unbind-sanitizes-private';

export interface Deviation {
  id: DeviationId;
  /** What the backend does instead. */
  what: string;
  /** The issue item (or shared decision) that settles it. */
  item: string;
}

export const DEVIATIONS: Readonly<Record<DeviationId, Deviation>> = {
  'views-survive-hypervisor-close': {
    id: 'views-survive-hypervisor-close',
    what: 'a HostView made before Hypervisor.close() is still mapped afterwards (a read still reaches the memory)',
    item: 'issue 8 item 2',
  },
  'guest-access-bad-gpa-efault': {
    id: 'guest-access-bad-gpa-efault',
    what: 'guestRead/guestWrite at a negative GPA or one at/after 2^64 fails EFAULT instead of EINVAL',
    item: 'issue 8 item 5e',
  },
  'error-backend-id': {
    id: 'error-backend-id',
    what: "a GuestMemError names a layer ('core', 'kvm-uapi', …) instead of the hypervisor's backend id",
    item: 'issue 8 item 6 (one backend id per backend)',
  },
  'punch-past-end-succeeds': {
    id: 'punch-past-end-succeeds',
    what: 'punchHole of a range that ends past the memory size succeeds (fallocate semantics) instead of EINVAL',
    item: 'issue 8 item 5e (out-of-range numbers are EINVAL)',
  },
  'range-errno': {
    id: 'range-errno',
    what: 'an out-of-range number is answered with ERANGE, EOVERFLOW or EFBIG (the layer underneath) instead of EINVAL',
    item: 'issue 8 item 5e',
  },
  'map-past-end-succeeds': {
    id: 'map-past-end-succeeds',
    what: 'map() of a range that ends (or starts) past the memory size succeeds (mmap semantics; the pages past the end fault) instead of EINVAL',
    item: 'issue 8 item 5e',
  },
  'huge-bind-needs-2mib': {
    id: 'huge-bind-needs-2mib',
    what: "huge-page memory needs a 2 MiB-multiple size at createGuestMemory and a 2 MiB-aligned gpa, offset and size at bind (EINVAL otherwise), while CreateGuestMemoryOptions.hugePages promises 2 MiB folios 'where aligned'",
    item: 'issue 10 item 6 (hugePages refusal) / interface docs',
  },
  'file-overlap-einval': {
    id: 'file-overlap-einval',
    what: "binding a memory range that is already bound fails EINVAL (the kernel's kvm_gmem_bind answer) instead of EEXIST, the neutral overlap code",
    item: 'issue 8 item 5 (one answer per edge; the neutral BindOptions docs do not name the code yet)',
  },
  'private-by-default-host-readable': {
    id: 'private-by-default-host-readable',
    what: "the host can read and write memory created without initiallyShared, and any page that no private binding holds (pages are the host's until a private binding takes them)",
    item: 'issue 8 item 5d',
  },
  'lent-untouched-host-accessible': {
    id: 'lent-untouched-host-accessible',
    what: 'a page bound private stays host-readable and -writable until the guest first touches it (Gunyah lends guest_memfd pages on demand, at the guest fault)',
    item: "issue 8 item 5d / 'the host never reads private memory' (inference: the v17 series provides folios at fault time)",
  },
  'shared-keeps-private-bytes': {
    id: 'shared-keeps-private-bytes',
    what: "a private page converted (or bound) to shared without discarding shows its former private bytes, without keepContents and the capability 'convert-keeps-contents'",
    item: 'issue 8 item 5b',
  },
  'reserved-dtb-gpa': {
    id: 'reserved-dtb-gpa',
    what: 'the adapter maps its own DTB page at 2^40 - 4 KiB when the VM first runs: a later bind overlapping it fails EEXIST, the guest can access it, and a guest access fails EEXIST when the user bound that GPA first — a GPA the neutral API never reserved',
    item: 'issue 8 item 5 (one answer per edge; not in the issue: found by the fuzzer)',
  },
  'map-refused-while-lent': {
    id: 'map-refused-while-lent',
    what: 'map() fails EBUSY while a page of the range is lent and locked by the guest, instead of mapping and refusing the access to that page',
    item: "issue 8 item 5 (one answer per edge; 'the host never reads private memory' holds either way)",
  },
  'guest-fault-while-host-mapped': {
    id: 'guest-fault-while-host-mapped',
    what: 'a guest access to a private page fails EFAULT while a host view of that page exists (the page cannot be lent while the host maps it)',
    item: 'issue 8 item 5 (one answer per edge; found by the fuzzer)',
  },
  'gpa-above-host-phys-bits': {
    id: 'gpa-above-host-phys-bits',
    what: "KVM refuses a slot ending above the host's largest guest frame (kvm_mmu_max_gfn(): 2^52 bytes on the probe machine, modelled by the simulated kernel too) with EINVAL; BindOptions.gpa allows this, and no capability tells a VMM the largest GPA",
    item: 'BindOptions.gpa (allowed by the contract; kept per target so other backends are held to 2^64)',
  },
  'shared-data-lives-in-binding': {
    id: 'shared-data-lives-in-binding',
    what: "what the guest writes to a shared page of memory that is not hostMappable lives in the binding's own host memory (the slot's userspace_addr), not in the memory object: unbind drops it, and a new binding of the same pages reads zero",
    item: "MemoryBinding.unbind: 'Data stays in the memory object' (issue 8 item 5, one answer per edge; found by the fuzzer)",
  },
  'unbind-sanitizes-private': {
    id: 'unbind-sanitizes-private',
    what: 'unbind (and VM destroy) zeroes the private pages the guest held: the cooperating guest sanitizes what it relinquishes, since the host may read the page afterwards',
    item: "MemoryBinding.unbind: 'Data stays in the memory object' vs 'the host never reads private memory' (issue 8 item 5d; found by the fuzzer)",
  },
};
