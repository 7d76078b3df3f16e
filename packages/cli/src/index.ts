export { runCli, cliVersion, EXIT_OK, EXIT_FAILURE, EXIT_USAGE, type CliIo, type CliHooks } from './program.js';
export { UsageError } from './usage-error.js';
export { probeReport, formatProbe, type ProbeReport, type BackendProbe } from './probe.js';
export { runDemo, type DemoReport, type DemoRun } from './demo-report.js';
export { runBench, defaultTargets, type BenchTarget, type BenchReport, type BenchTargetResult, type RunBenchOptions } from './bench.js';
