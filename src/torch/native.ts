// Loads the libtorch addon (native/) and declares its raw interface. Only src/torch uses it:
// handles are plain numbers that the Tensor class owns.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** A native tensor handle: a slot number in the addon's table. */
export type Handle = number;
type H = Handle;
type Opt<T> = T | null;
/** Bit 0: the first operand is a scalar; bit 1: the second is. */
type ScalarMask = number;
type Scalar = number | boolean;
type Operand = H | Scalar;

export interface Native {
  torchVersion: string;
  // lifetime and metadata
  dispose(t: H): boolean;
  disposeMany(ts: H[]): void;
  isDisposed(t: H): boolean;
  memory(): { numTensors: number; numBytes: number };
  shape(t: H): number[];
  dtype(t: H): string;
  device(t: H): string;
  isContiguous(t: H, format?: string): boolean;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  cudaDeviceCount(): number;
  cudaSynchronize(): void;
  // creation
  empty(shape: number[], dtype: Opt<string>, device: Opt<string>): H;
  zeros(shape: number[], dtype: Opt<string>, device: Opt<string>): H;
  ones(shape: number[], dtype: Opt<string>, device: Opt<string>): H;
  full(shape: number[], value: Scalar, dtype: Opt<string>, device: Opt<string>): H;
  arange(start: number, end: number, step: number, dtype: Opt<string>, device: Opt<string>): H;
  linspace(start: number, end: number, steps: number, dtype: Opt<string>, device: Opt<string>): H;
  rand(shape: number[], dtype: Opt<string>, device: Opt<string>): H;
  randn(shape: number[], dtype: Opt<string>, device: Opt<string>): H;
  randint(low: number, high: number, shape: number[], dtype: Opt<string>, device: Opt<string>): H;
  randperm(n: number, device: Opt<string>): H;
  fromBuffer(data: ArrayBufferView, shape: number[], dtype: string, device: Opt<string>): H;
  toBuffer(t: H): ArrayBuffer;
  item(t: H): number;
  // views and indexing
  reshape(t: H, shape: number[]): H;
  view(t: H, shape: number[]): H;
  permute(t: H, dims: number[]): H;
  transpose(t: H, d0: number, d1: number): H;
  narrow(t: H, dim: number, start: number, length: number): H;
  slice(t: H, dim: number, start: Opt<number>, end: Opt<number>, step: number): H;
  select(t: H, dim: number, index: number): H;
  indexSelect(t: H, dim: number, index: H): H;
  gather(t: H, dim: number, index: H): H;
  cat(ts: H[], dim: number): H;
  stack(ts: H[], dim: number): H;
  split(t: H, sizes: number | number[], dim: number): H[];
  chunk(t: H, n: number, dim: number): H[];
  unsqueeze(t: H, dim: number): H;
  squeeze(t: H, dim: Opt<number>): H;
  flatten(t: H, start: number, end: number): H;
  expand(t: H, shape: number[]): H;
  repeat(t: H, repeats: number[]): H;
  flip(t: H, dims: number[]): H;
  contiguous(t: H, format?: string): H;
  clone(t: H): H;
  to(t: H, device: Opt<string>, dtype: Opt<string>): H;
  // math
  [unary: string]: unknown;
  add(a: Operand, b: Operand, mask: ScalarMask): H;
  where(cond: H, a: Operand, b: Operand, mask: ScalarMask): H;
  clamp(t: H, min: Opt<number>, max: Opt<number>): H;
  baddbmm(input: H, b1: H, b2: H, beta: number, alpha: number): H;
  sum(t: H, dims: Opt<number[]>, keepdim: boolean, dtype: Opt<string>): H;
  mean(t: H, dims: Opt<number[]>, keepdim: boolean): H;
  var(t: H, dims: Opt<number[]>, correction: Opt<number>, keepdim: boolean): H;
  std(t: H, dims: Opt<number[]>, correction: Opt<number>, keepdim: boolean): H;
  norm(t: H, p: number, dims: Opt<number[]>, keepdim: boolean): H;
  max(t: H, dim: Opt<number>, keepdim: boolean): H;
  min(t: H, dim: Opt<number>, keepdim: boolean): H;
  argmax(t: H, dim: Opt<number>, keepdim: boolean): H;
  argmin(t: H, dim: Opt<number>, keepdim: boolean): H;
  sort(t: H, dim: number, descending: boolean): [H, H];
  argsort(t: H, dim: number, descending: boolean): H;
  topk(t: H, k: number, dim: number, largest: boolean, sorted: boolean): [H, H];
  cumsum(t: H, dim: number): H;
  cumprod(t: H, dim: number): H;
  softmax(t: H, dim: number): H;
  logSoftmax(t: H, dim: number): H;
  eigh(t: H, uplo: string): [H, H];
  equal(a: H, b: H): boolean;
  copy_(t: H, src: H): H;
  fill_(t: H, value: Scalar): H;
  zero_(t: H): H;
  add_(t: H, other: Operand, alpha: number, otherIsScalar: boolean): H;
  mul_(t: H, other: Operand, otherIsScalar: boolean): H;
  // nn functional
  conv2d(x: H, w: H, b: Opt<H>, stride: number[], padding: number[], dilation: number[], groups: number): H;
  linear(x: H, w: H, b: Opt<H>): H;
  conv1x1(x: H, w: H, b: Opt<H>): H;
  groupNorm(x: H, groups: number, w: Opt<H>, b: Opt<H>, eps: number): H;
  layerNorm(x: H, shape: number[], w: Opt<H>, b: Opt<H>, eps: number): H;
  batchNorm(x: H, mean: Opt<H>, variance: Opt<H>, w: Opt<H>, b: Opt<H>, training: boolean, momentum: number, eps: number): H;
  interpolateNearest(x: H, size: Opt<number[]>, scale: Opt<number[]>): H;
  pad(x: H, pads: number[], mode: string, value: number): H;
  dropout(x: H, p: number, training: boolean): H;
  mseLoss(a: H, b: H, reduction: string): H;
  crossEntropy(logits: H, target: H, reduction: string): H;
  avgPool2d(x: H, kernel: number[], stride: number[], padding: number[]): H;
  maxPool2d(x: H, kernel: number[], stride: number[], padding: number[]): H;
  adaptiveAvgPool2d(x: H, size: number[]): H;
  // autograd
  requiresGrad(t: H): boolean;
  setRequiresGrad(t: H, on: boolean): H;
  isLeaf(t: H): boolean;
  retainGrad(t: H): void;
  backward(t: H, grad: Opt<H>, retainGraph: boolean): void;
  grad(t: H): Opt<H>;
  setGrad(t: H, g: Opt<H>): void;
  zeroGrad(ts: H[]): void;
  detach(t: H): H;
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  // optimizer kernels
  adamwStep(params: H[], expAvg: H[], expAvgSq: H[], step: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number): void;
  clipGradNorm(params: H[], maxNorm: number): number;
  emaUpdate(ema: H[], params: H[], decay: number): void;
  // torch.distributed (c10d): the default process group and its collectives
  distInit(backend: string, host: string, port: number, rank: number, worldSize: number, timeoutMs: number): void;
  distDestroy(): boolean;
  distIsInitialized(): boolean;
  distAllReduce(ts: H[], op: string, bucketBytes: number): void;
  distBroadcast(ts: H[], src: number, bucketBytes: number): void;
  distAllGather(t: H): H[];
  distBarrier(): void;
  distExitWithParent(ppid: number): void;
}

/** The raw unary/binary ops, called by name from Tensor. */
export type UnaryOp = (t: H) => H;
export type BinaryOp = (a: Operand, b: Operand, mask: ScalarMask) => H;

function load(): Native {
  // dist/src/torch/native.js -> <package>/build/Release/diffprune_native.node
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
  const file = join(root, "build", "Release", "diffprune_native.node");
  if (!existsSync(file)) {
    throw new Error(`diffprune's native addon is not built (${file} is missing): run scripts/setup.sh or npm run build`);
  }
  return createRequire(import.meta.url)(file) as Native;
}

// A plain copy of the exports, so that observeOps() can wrap its functions for one traced call.
export const native: Native = { ...load() };

// Debian's libtorch starts with one intra-op thread: use the cores this process may run on
// (a cgroup or affinity mask may allow fewer than the machine has), or DIFFPRUNE_NUM_THREADS.
native.setNumThreads(Math.max(1, Number(process.env.DIFFPRUNE_NUM_THREADS) || availableParallelism()));
// Looked up on each call (not bound once) so that observeOps() sees these ops too.
export const unaryOp = (name: string): UnaryOp => (t) => (native[name] as UnaryOp)(t);
export const binaryOp = (name: string): BinaryOp => (a, b, mask) => (native[name] as BinaryOp)(a, b, mask);
