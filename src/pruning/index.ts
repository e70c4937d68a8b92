// Structural pruning: trace -> dependency graph -> groups; the criteria (one registry, criteria/);
// the pruner; the MAC/param counter; Diff-Pruning's gradient loop over the informative timesteps.
export { DependencyGraph, parentPath, type Layer, type NormConstraint, type Slot } from "./graph.js";
export { groupOf, pruningGroups, isIgnored, type GroupMember, type PruningGroup } from "./groups.js";
export { ddpmExpTaylor, meanReduced, type ChannelRows, type Criterion } from "./criterion.js";
export { asCriterion, CRITERIA, criterionNamed } from "./criteria/index.js";
export { IMPORTANCE_VARIANTS, checkImportanceVariant, Importance, type ImportanceVariant } from "./importance.js";
export { channelsRemoved, prune, removeChannels, type LayerChannels, type PruneOptions, type PruneResult } from "./pruner.js";
export { countOpsAndParams, type Cost, type LayerCost } from "./count.js";
export { accumulateGradients, type GradientOptions, type GradientReport } from "./gradients.js";
export { CalibrationError, drawCalibration, loadCalibration, saveCalibration, whyUnusable, type Calibration } from "./calibration.js";
export { pruneUNet, unetForward, type UNetPruneOptions, type UNetPruneReport } from "./unet.js";
