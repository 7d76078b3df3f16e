#!/usr/bin/env node
/** Runs MiniVmm on every backend registered here that is available, and prints what it saw. */
import 'reflect-metadata';
import { HYPERVISOR_REGISTRY, registerCore } from '@guestmem/core';
import { registerGunyah } from '@guestmem/gunyah';
import { registerKvm } from '@guestmem/kvm';
import { container } from 'tsyringe';
import { runMiniVmm } from './scenario.js';

const c = container.createChildContainer();
registerCore(c);
registerKvm(c, { driver: 'auto' });
registerGunyah(c);
for (const { provider, result } of c.resolve(HYPERVISOR_REGISTRY).probeAll()) {
  if (!result.available) {
    console.log(`\n${provider.id}: skipped (${result.reason})`);
    continue;
  }
  console.log(`\n${provider.id}:`);
  const h = provider.create();
  try {
    const s = runMiniVmm(h, (l) => console.log(`  ${l}`));
    console.log(`  → DMA-mapped pages ${s.dmaMappedPages}, ballooned pages ${s.balloonedPages}`);
  } finally {
    h.close();
  }
}
