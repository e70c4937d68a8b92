// diffprune's tensor library: libtorch through the native addon, with PyTorch's names and
// TensorFlow.js's explicit memory management.
export { Tensor, type Dims, type MemoryFormat } from "./tensor.js";
export type { AnyTypedArray, Device, DType, LoadDType } from "./dtype.js";
export { tidy, keep, dispose, memory, sequential } from "./scope.js";
export * from "./creation.js";
export * from "./functional.js";
export * from "./autograd.js";
export * from "./runtime.js";
export { isObservedTensor, isObserving, observedBytes, observedDType, observeOps, type ObservedArgs, type ObservedOp, type ObservedTensor } from "./observe.js";
export { NOT_OPS, OP_RULES, type ArgKind, type Coupling, type OpRule } from "./op-rules.js";
export * as distributed from "./distributed.js";
