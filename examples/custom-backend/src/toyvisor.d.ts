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
import { GuestMemFile, RangeStateMap, fileOffset, gpa as toGpa, type BindOptions, type Capabilities, type CreateGuestMemoryOptions, type FolioAllocator, type GpaRange, type GuestMemory, type HostView, type Hypervisor, type MemoryAccess, type MemoryBinding, type Vm } from '@guestmem/core';
import type { DependencyContainer } from 'tsyringe';
export declare class Toyvisor implements Hypervisor {
    readonly allocator: FolioAllocator;
    readonly id = "toyvisor";
    readonly capabilities: Capabilities;
    constructor(allocator?: FolioAllocator);
    /** What close() must release: VMs and memory objects still alive. */
    readonly vms: Set<ToyVm>;
    readonly memories: Set<ToyMemory>;
    createVm(): Vm;
    close(): void;
}
declare class ToyMemory implements GuestMemory {
    readonly vm: ToyVm;
    readonly hostMappable: boolean;
    private static ids;
    readonly id: number;
    readonly file: GuestMemFile<ToyBinding>;
    /** Pages the guest owns: the host may not touch them. */
    readonly privatePages: RangeStateMap<MemoryAccess>;
    private open;
    constructor(vm: ToyVm, size: bigint | number, hostMappable: boolean, initiallyShared: boolean);
    get size(): bigint;
    get closed(): boolean;
    /** The handle, not the file: bindings keep the file alive after close(). */
    private assertOpen;
    allocate(offset: bigint | number, len: bigint | number): void;
    punchHole(offset: bigint | number, len: bigint | number): void;
    map(opts?: {
        offset?: bigint | number;
        length?: number;
    }): HostView;
    markPoisoned(offset: bigint | number): void;
    close(): void;
}
declare class ToyBinding implements MemoryBinding {
    private readonly vm;
    readonly memory: ToyMemory;
    readonly gpa: ReturnType<typeof toGpa>;
    readonly size: bigint;
    readonly offset: ReturnType<typeof fileOffset>;
    active: boolean;
    readonly readOnly: boolean;
    constructor(vm: ToyVm, memory: ToyMemory, gpa: ReturnType<typeof toGpa>, size: bigint, offset: ReturnType<typeof fileOffset>, readOnly: boolean);
    unbind(): void;
}
declare class ToyVm implements Vm {
    readonly hypervisor: Toyvisor;
    private static ids;
    readonly id: number;
    readonly capabilities: Capabilities;
    readonly memoryState: RangeStateMap<MemoryAccess>;
    private readonly table;
    private dead;
    constructor(hypervisor: Toyvisor);
    get destroyed(): boolean;
    private live;
    createGuestMemory(o: CreateGuestMemoryOptions): GuestMemory;
    bind(o: BindOptions): MemoryBinding;
    bindings(): readonly MemoryBinding[];
    forget(b: ToyBinding): void;
    convert(range: GpaRange, to: MemoryAccess, opts?: {
        discard?: boolean;
    }): void;
    private locate;
    guestRead(gpa: bigint | number, len: number): Uint8Array;
    guestWrite(gpa: bigint | number, data: Uint8Array): void;
    destroy(): void;
}
/** Registers toyvisor as a hypervisor provider (a simulation: priority 10, not a fake). */
export declare function registerToyvisor(container: DependencyContainer): DependencyContainer;
export {};
//# sourceMappingURL=toyvisor.d.ts.map