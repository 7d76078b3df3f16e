export * from './api.js';
export * from './uapi/index.js';
export { openGunyah, SimDevice, GUNYAH_DEVICE_FD, HOST_VMID } from './sim/index.js';
export { pageTransition, reclaimFolio, type PageState, type PageEvent } from './sim/index.js';
export { MemParcelTable, RM_ERROR, RM_RPC, rmErrno } from './sim/index.js';
export { BACKEND as GUNYAH_SIM_BACKEND } from './sim/index.js';
export * from './adapter/index.js';
export * from './ack/index.js';
