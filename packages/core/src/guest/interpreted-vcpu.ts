/**
 * The neutral {@link Vcpu} of a simulated backend: it runs a {@link GuestImage}'s op list through
 * the backend's guest-access path ({@link GuestAccessPort}). A backend gives the port, its id and
 * its MMIO-retry answer; the lifecycle (EBADF after `close()`, idempotent close) is the same for all.
 */
import { gmErr } from '../errors/guest-mem-error.js';
import type { Vcpu, VcpuExit, VcpuRunOptions } from '../hypervisor/vcpu.js';
import type { GuestImage } from './image.js';
import { type GuestAccessPort, GuestOpInterpreter } from './interpreter.js';

export abstract class InterpretedVcpu implements Vcpu {
  readonly #interp: GuestOpInterpreter;
  #closed = false;

  protected constructor(
    /** The backend id errors carry. */
    protected readonly backend: string,
    port: GuestAccessPort,
    private readonly onClose: (v: Vcpu) => void,
  ) {
    this.#interp = new GuestOpInterpreter(port);
  }

  abstract readonly id: number;
  /** Whether {@link retryMmio} re-executes an MMIO exit's access (a backend's resume rule). */
  abstract readonly retriesMmio: boolean;
  /** Why {@link retryMmio} is `EOPNOTSUPP` where {@link retriesMmio} is false. */
  protected readonly noMmioRetry: string = 'this backend resumes an MMIO exit only as handled';

  get closed(): boolean {
    return this.#closed;
  }

  protected live(op: string): void {
    if (this.#closed) throw gmErr('EBADF', op, this.backend, `vCPU ${this.id} is closed`);
  }

  /** Runs before every `run()` (e.g. a VM that starts on its first run). */
  protected beforeRun(): void {}
  /** Runs once, at the first `close()` (e.g. closing the backend's vCPU fd). */
  protected release(): void {}

  load(image: GuestImage): void {
    this.live('load');
    this.#interp.load(image);
  }

  run(_opts: VcpuRunOptions = {}): VcpuExit {
    this.live('run');
    this.beforeRun();
    return this.#interp.run();
  }

  completeRead(data: Uint8Array): void {
    this.live('completeRead');
    this.#interp.completeRead(data);
  }

  retryMmio(): void {
    this.live('retryMmio');
    if (!this.retriesMmio) throw gmErr('EOPNOTSUPP', 'retryMmio', this.backend, this.noMmioRetry);
    this.#interp.retryMmio();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.release();
    this.onClose(this);
  }
}
