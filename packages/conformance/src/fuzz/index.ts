export { Model, ModelMem, ModelVm, exactInt, type Expect, type Outcome } from './model.js';
export { commandArb, sequenceArb, ANCHORS, BAD_NUMBERS, BIG_SIZES, type Cmd, type GenProfile } from './commands.js';
export { runSequence, SequenceRun, Counterexample, FuzzStats, show, type FuzzTarget } from './runner.js';
export { fuzzTarget, formatReport, DEFAULT_PROFILE, type FuzzReport } from './fuzz.js';
export { DEVIATIONS, type Deviation, type DeviationId } from './deviations.js';
