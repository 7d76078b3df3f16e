/**
 * "Toyvisor": a complete guestmem backend for a made-up hypervisor, in one file. It shows the
 * pieces of docs/writing-a-backend.md on the smallest possible policy:
 *
 * - memory objects are core `GuestMemFile`s sharing one `FolioAllocator`;
 * - bindings use the file's interval index (overlap → EEXIST) and a per-VM GPA table;
 * - private pages are enforced in `GuestMemOps.hostAccess` (the host gets SIGBUS);
 * - conversion is in place and punches what is no longer used;
 * - guests are emulated with `file.read/write` (capability 'guest-access').
 *
 * It passes @guestmem/conformance (see toyvisor.test.ts).
 */
import { ArenaFolioAllocator, GuestMemFile, HYPERVISOR_PROVIDER, HostMapping, RangeStateMap, fileOffset, gmErr, gpa as toGpa, makeCapabilities, toBig, } from '@guestmem/core';
const ID = 'toyvisor';
const PAGE = 4096n;
const CAPS = makeCapabilities({
    backend: ID,
    simulated: true,
    caps: ['guest-memory', 'host-map', 'initially-shared', 'private-memory', 'convert-in-place', 'punch-hole', 'guest-access', 'poison-injection'],
    maxGuestMemorySize: 1n << 40n,
});
export class Toyvisor {
    allocator;
    id = ID;
    capabilities = CAPS;
    constructor(allocator = new ArenaFolioAllocator()) {
        this.allocator = allocator;
    }
    /** What close() must release: VMs and memory objects still alive. */
    vms = new Set();
    memories = new Set();
    createVm() {
        const vm = new ToyVm(this);
        this.vms.add(vm);
        return vm;
    }
    close() {
        for (const vm of [...this.vms])
            vm.destroy();
        for (const m of [...this.memories])
            m.close();
    }
}
class ToyMemory {
    vm;
    hostMappable;
    static ids = 1;
    id = ToyMemory.ids++;
    file;
    /** Pages the guest owns: the host may not touch them. */
    privatePages;
    open = true;
    constructor(vm, size, hostMappable, initiallyShared) {
        this.vm = vm;
        this.hostMappable = hostMappable;
        this.file = GuestMemFile.create(size, 0, {
            backend: ID,
            // The backend's whole host-access policy: private pages SIGBUS.
            hostAccess: (_f, index) => (this.privatePages.get(index) === 'private' ? 'sigbus' : 'allow'),
        }, { allocator: vm.hypervisor.allocator, maxSize: CAPS.maxGuestMemorySize });
        this.privatePages = new RangeStateMap(initiallyShared ? 'shared' : 'private', this.file.pages);
        vm.hypervisor.memories.add(this);
    }
    get size() {
        return this.file.size;
    }
    get closed() {
        return !this.open;
    }
    /** The handle, not the file: bindings keep the file alive after close(). */
    assertOpen(op) {
        if (!this.open)
            throw gmErr('EBADF', op, ID, `memory ${this.id} was closed`);
    }
    allocate(offset, len) {
        this.assertOpen('allocate');
        this.file.allocate(offset, len);
    }
    punchHole(offset, len) {
        this.assertOpen('punchHole');
        this.file.punchHole(offset, len);
    }
    map(opts = {}) {
        this.assertOpen('map');
        if (!this.hostMappable)
            throw gmErr('ENODEV', 'map', ID, 'memory was created without hostMappable');
        const offset = toBig(opts.offset ?? 0);
        const m = new HostMapping(this.file, { offset, length: opts.length ?? Number(this.file.size - offset) });
        return m; // core's HostMapping already is a HostView
    }
    markPoisoned(offset) {
        this.assertOpen('markPoisoned');
        const off = toBig(offset);
        if (off < 0n || off % PAGE || off >= this.file.size)
            throw gmErr('EINVAL', 'markPoisoned', ID, `offset ${off}`);
        this.file.markPoisoned(Number(off / PAGE));
    }
    close() {
        if (!this.open)
            return;
        this.open = false;
        this.vm.hypervisor.memories.delete(this);
        this.file.release();
    }
}
class ToyBinding {
    vm;
    memory;
    gpa;
    size;
    offset;
    active = true;
    readOnly;
    constructor(vm, memory, gpa, size, offset, readOnly) {
        this.vm = vm;
        this.memory = memory;
        this.gpa = gpa;
        this.size = size;
        this.offset = offset;
        this.readOnly = readOnly;
    }
    unbind() {
        if (!this.active)
            return;
        this.active = false;
        this.memory.file.unbind(this);
        this.vm.forget(this);
        // The binding's reference on the file (taken by bind): the last one frees the memory.
        this.memory.file.release();
    }
}
class ToyVm {
    hypervisor;
    static ids = 1;
    id = ToyVm.ids++;
    capabilities = CAPS;
    memoryState = new RangeStateMap('shared');
    table = [];
    dead = false;
    constructor(hypervisor) {
        this.hypervisor = hypervisor;
    }
    get destroyed() {
        return this.dead;
    }
    live(op) {
        if (this.dead)
            throw gmErr('EBADF', op, ID, 'VM destroyed');
    }
    createGuestMemory(o) {
        this.live('createGuestMemory');
        if (o.hugePages)
            throw gmErr('EOPNOTSUPP', 'createGuestMemory', ID, 'no huge pages');
        return new ToyMemory(this, o.size, o.hostMappable ?? false, o.initiallyShared ?? false);
    }
    bind(o) {
        this.live('bind');
        const mem = o.memory;
        if (!(mem instanceof ToyMemory) || mem.vm !== this)
            throw gmErr('EINVAL', 'bind', ID, 'the memory object was not created by this VM');
        if (mem.closed)
            throw gmErr('EBADF', 'bind', ID, 'the memory object is closed');
        const int = (v) => {
            if (typeof v !== 'bigint' && !Number.isSafeInteger(v))
                throw gmErr('EINVAL', 'bind', ID, `${v} is not an exact integer`);
            return BigInt(v);
        };
        const [gpa, size, offset] = [int(o.gpa), int(o.size), int(o.offset)];
        if (size <= 0n || gpa < 0n || gpa % PAGE || size % PAGE || offset % PAGE || offset < 0n || offset + size > mem.size || gpa + size > 1n << 64n) {
            throw gmErr('EINVAL', 'bind', ID, `gpa ${gpa}, size ${size}, offset ${offset}: need page-aligned, > 0, inside ${mem.size}`);
        }
        const clash = this.table.find((b) => gpa < b.gpa + b.size && b.gpa < gpa + size);
        if (clash)
            throw gmErr('EEXIST', 'bind', ID, `GPA range overlaps the binding at 0x${clash.gpa.toString(16)}`);
        const b = new ToyBinding(this, mem, toGpa(gpa), size, fileOffset(offset), o.readOnly ?? false);
        mem.file.bind(Number(offset / PAGE), Number((offset + size) / PAGE), b, { overlapCode: 'EEXIST' });
        // A binding pins the file: memory.close() leaves bound memory alive until the last unbind.
        mem.file.acquire();
        this.table.push(b);
        // Default access: private, since toyvisor VMs have private memory (the neutral rule). Either
        // access is applied to the GPA range (memoryState) and the memory's pages.
        this.convert({ gpa, size }, o.access ?? 'private', { discard: false });
        return b;
    }
    bindings() {
        return [...this.table].sort((x, y) => (x.gpa < y.gpa ? -1 : 1));
    }
    forget(b) {
        this.table.splice(this.table.indexOf(b), 1);
    }
    convert(range, to, opts = {}) {
        this.live('convert');
        const [gpa, size] = [toBig(range.gpa), toBig(range.size)];
        if (size <= 0n || gpa < 0n || gpa % PAGE || size % PAGE || gpa + size > 1n << 64n)
            throw gmErr('EINVAL', 'convert', ID, 'unaligned range');
        // Check every page first, so a failing conversion changes nothing.
        const pieces = this.table.filter((b) => gpa < b.gpa + b.size && b.gpa < gpa + size);
        for (const b of pieces) {
            const lo = gpa > b.gpa ? gpa : b.gpa;
            const hi = gpa + size < b.gpa + b.size ? gpa + size : b.gpa + b.size;
            const first = Number((b.offset + lo - b.gpa) / PAGE);
            const end = Number((b.offset + hi - b.gpa) / PAGE);
            // Converting drops the old contents of the pages that change, as a CoCo guest's conversion
            // does; pages already in state `to` keep theirs.
            const changed = b.memory.privatePages.set(first, end, to);
            if (opts.discard !== false)
                for (const c of changed)
                    b.memory.file.punchHole(BigInt(c.first) * PAGE, BigInt(c.end - c.first) * PAGE);
        }
        this.memoryState.set(Number(gpa / PAGE), Number((gpa + size) / PAGE), to);
    }
    locate(gpa, len, op) {
        this.live(op);
        const b = this.table.find((x) => gpa >= x.gpa && gpa + BigInt(len) <= x.gpa + x.size);
        if (!b)
            throw gmErr('EFAULT', op, ID, `GPA 0x${gpa.toString(16)} (+${len}) is not inside one binding`);
        return { b, off: Number(b.offset + gpa - b.gpa) };
    }
    guestRead(gpa, len) {
        const { b, off } = this.locate(toBig(gpa), len, 'guestRead');
        return b.memory.file.read(off, len);
    }
    guestWrite(gpa, data) {
        const { b, off } = this.locate(toBig(gpa), data.length, 'guestWrite');
        if (b.readOnly)
            throw gmErr('EFAULT', 'guestWrite', ID, 'read-only binding');
        b.memory.file.write(off, data);
    }
    destroy() {
        if (this.dead)
            return;
        for (const b of [...this.table])
            b.unbind();
        this.dead = true;
        this.hypervisor.vms.delete(this);
    }
}
/** Registers toyvisor as a hypervisor provider (a simulation: priority 10, not a fake). */
export function registerToyvisor(container) {
    container.register(HYPERVISOR_PROVIDER, {
        useValue: { id: ID, priority: 10, fake: false, description: 'toyvisor example backend', probe: () => ({ available: true, reason: 'in-process' }), create: () => new Toyvisor() },
    });
    return container;
}
//# sourceMappingURL=toyvisor.js.map