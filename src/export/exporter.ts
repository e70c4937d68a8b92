// ONNX export from the op trace that pruning uses: the forward runs once at batch 2 and once at
// batch 3 under observeOps, and every traced op becomes the nodes its emitter (emitters.ts) writes.
// Parameters become initializers under their state-dict names; tensors the forward makes from
// nothing (arange, full, ...) become constants. What differs between the two traces is what grows
// with the batch, so the graph takes any batch size. Nothing here knows a UNet: exportUNet only
// names its inputs and stores its config.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as torch from "../torch/index.js";
import { isObservedTensor, OP_RULES, type DType, type ObservedOp, type ObservedTensor, type Tensor } from "../torch/index.js";
import type { Module } from "../nn/index.js";
import { packageRoot } from "../io/index.js";
import type { UNet2DModel } from "../models/index.js";
import { decodeLatents, schedulerConfigToJSON, type Autoencoder, type Scheduler } from "../diffusion/index.js";
import { parentPath } from "../pruning/index.js";
import { OnnxBuilder, TRACE_BATCHES, Unsupported, type ConstantData } from "./builder.js";
import { ONNX_EMITTERS, type EmitContext } from "./emitters.js";
import { DATA_TYPE, encodeModel, type Dim, type ValueInfoProto } from "./proto.js";

/** A traced tensor's identity while it lives. */
type Handle = ObservedTensor["handle"];

/** The opset the emitters write. */
export const OPSET = 17;
/** Metadata keys of an exported UNet: its config.json and its training scheduler's config, as JSON. */
export const UNET_CONFIG_KEY = "unet_config";
export const SCHEDULER_CONFIG_KEY = "scheduler_config";
/** Metadata key of an exported decoder: its autoencoder's config.json. */
export const AUTOENCODER_CONFIG_KEY = "autoencoder_config";
/** The graph input of a class-conditional UNet's labels. */
export const CLASS_LABELS_INPUT = "class_labels";

/** An op or a tensor the exporter cannot write as ONNX; the message names the op and the layer. */
export class OnnxExportError extends Error {
  override name = "OnnxExportError";
}

export interface ExportInput {
  name: string;
  /** An example of this input with `batch` samples on axis 0 (its values do not matter). */
  example: (batch: number) => Tensor;
}

export interface ExportSpec {
  /** The graph's inputs, in the order `forward` takes them; the first one's axis 0 is the batch. */
  inputs: ExportInput[];
  /** The graph output's name. */
  output: string;
  forward: (...inputs: Tensor[]) => Tensor;
  /** The model's metadata_props. */
  metadata?: Record<string, string>;
  graphName?: string;
}

export interface OnnxExport {
  /** The .onnx file's bytes. */
  bytes: Uint8Array;
  opset: number;
  nodes: number;
  initializers: number;
}

/** A tensor the forward did not get from its inputs, its parameters or an op: its values go into the graph. */
interface Constant {
  dtype: DType;
  shape: number[];
  bytes: Uint8Array;
}

interface Trace {
  ops: ObservedOp[];
  dtypes: Map<Handle, DType>;
  constants: Map<Handle, Constant>;
  inputs: ObservedTensor[];
  output: ObservedTensor;
}

const observed = (t: Tensor): ObservedTensor => ({ handle: t.handle, shape: [...t.shape] });
const tensorArgs = (op: ObservedOp): ObservedTensor[] => Object.values(op.args).flatMap((a) => (Array.isArray(a) ? a : [a])).filter(isObservedTensor);
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function trace(spec: ExportSpec, batch: number, params: ReadonlyMap<Handle, Tensor>): Trace {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const inputs = spec.inputs.map((i) => i.example(batch));
      const dtypes = new Map<Handle, DType>([...params, ...inputs.map((t): [Handle, Tensor] => [t.handle, t])].map(([h, t]) => [h, t.dtype]));
      const constants = new Map<Handle, Constant>();
      const ops: ObservedOp[] = [];
      const result = torch.observeOps(
        (op) => {
          for (const t of tensorArgs(op)) {
            if (dtypes.has(t.handle)) continue;
            // Made from nothing (creation functions are not ops) or held from outside the module.
            const dtype = torch.observedDType(t);
            dtypes.set(t.handle, dtype);
            constants.set(t.handle, { dtype, shape: t.shape, bytes: torch.observedBytes(t) });
          }
          for (const o of op.outputs) dtypes.set(o.handle, torch.observedDType(o));
          ops.push(op);
        },
        () => spec.forward(...inputs),
      );
      return { ops, dtypes, constants, inputs: inputs.map(observed), output: observed(result) };
    }),
  );
}

/** The graph's value info for a tensor traced with shapes `a` and `b`: the axes that differ are the batch. */
function valueInfo(name: string, dtype: DType, a: readonly number[], b: readonly number[]): ValueInfoProto {
  const dim = a.map((s, i): Dim => (s === b[i] ? { dimValue: s } : { dimParam: "batch" }));
  return { name, type: { tensorType: { elemType: DATA_TYPE[dtype], shape: { dim } } } };
}

/** The module's parameters and buffers, by handle: the tensor and its state-dict name. */
interface Params {
  tensors: Map<Handle, Tensor>;
  names: Map<Handle, string>;
}

/** Writes the ops of trace `a` as graph nodes; trace `b` (the same ops at the other batch size) tells what follows the batch. */
class Translation {
  readonly g: OnnxBuilder;
  /** The ONNX value of each tensor of trace `a`. */
  readonly names: Map<Handle, string>;
  /** The layer each tensor comes from: the module of the last op with a weight upstream. */
  readonly #layerOf = new Map<Handle, string>();

  constructor(
    readonly a: Trace,
    readonly b: Trace,
    readonly params: Params,
    inputNames: string[],
  ) {
    this.g = new OnnxBuilder(inputNames[0]!);
    this.names = new Map(a.inputs.map((t, i) => [t.handle, inputNames[i]!]));
  }

  /** The ONNX value of a tensor of trace `a`, `tb` being the same tensor in trace `b`. */
  valueOf(ta: ObservedTensor, tb: ObservedTensor): string {
    const known = this.names.get(ta.handle);
    if (known !== undefined) return known;
    let name: string;
    const param = this.params.tensors.get(ta.handle);
    if (param) {
      name = this.g.initializer(this.params.names.get(ta.handle)!, param.dtype, param.shape, param.toTypedArray() as ConstantData);
    } else {
      const [ca, cb] = [this.a.constants.get(ta.handle), this.b.constants.get(tb.handle)];
      if (!ca || !cb) throw new Unsupported("an input tensor that is neither a graph input, a parameter nor a constant");
      name = constant(this.g, ca, cb);
    }
    this.names.set(ta.handle, name);
    return name;
  }

  /** Emits op `i`; an op without an emitter, or one its emitter cannot write, is an OnnxExportError naming the op and its layer. */
  emit(i: number): void {
    const [op, other] = [this.a.ops[i]!, this.b.ops[i]!];
    const rule = OP_RULES.get(op.op);
    const weight = rule?.module === undefined ? undefined : op.args[rule.module];
    const own = isObservedTensor(weight) && this.params.names.has(weight.handle) ? parentPath(this.params.names.get(weight.handle)!) : undefined;
    const upstream = tensorArgs(op).map((t) => this.#layerOf.get(t.handle)).find((l) => l !== undefined);
    const layer = own ?? upstream;
    const where = own ? `in layer ${own}` : upstream ? `after layer ${upstream}` : "before the first layer";
    const emitter = ONNX_EMITTERS.get(op.op);
    if (!emitter) throw new OnnxExportError(`cannot export to ONNX: op ${op.op} (${where}) has no ONNX form in the exporter (src/export/emitters.ts)`);
    this.g.scope = layer ?? "";
    let outputs: string | string[];
    try {
      outputs = emitter(this.#context(op, other));
    } catch (err) {
      if (err instanceof Unsupported) throw new OnnxExportError(`cannot export to ONNX: op ${op.op} (${where}): ${err.message}`);
      throw err;
    }
    [outputs].flat().forEach((name, k) => {
      const t = op.outputs[k]!;
      this.names.set(t.handle, name);
      if (layer !== undefined) this.#layerOf.set(t.handle, layer);
    });
  }

  #context(op: ObservedOp, other: ObservedOp): EmitContext {
    const g = this.g;
    const tensorArg = (name: string, index?: number): [ObservedTensor, ObservedTensor] => {
      const [x, y] = [op.args[name], other.args[name]];
      const [ta, tb] = index === undefined ? [x, y] : [(x as unknown[])[index], (y as unknown[])[index]];
      if (!isObservedTensor(ta) || !isObservedTensor(tb)) throw new Unsupported(`argument ${name} is not a tensor`);
      return [ta, tb];
    };
    const fixed = <T>(read: (o: ObservedOp) => T): T => {
      const [va, vb] = [read(op), read(other)];
      if (!same(va, vb))
        throw new Unsupported(`${JSON.stringify(va)} at batch ${TRACE_BATCHES[0]} is ${JSON.stringify(vb)} at batch ${TRACE_BATCHES[1]}, and the graph cannot follow it`);
      return va;
    };
    const dtype = (t: string | ObservedTensor): DType => this.a.dtypes.get((typeof t === "string" ? tensorArg(t)[0] : t).handle)!;
    const cast = (value: string, from: DType, to: DType): string => (from === to ? value : g.op("Cast", [value], { to: DATA_TYPE[to] }));
    const tensor = (name: string): string => this.valueOf(...tensorArg(name));
    return {
      g,
      op,
      tensor,
      optional: (name) => (op.args[name] === null ? null : tensor(name)),
      tensors: (name) => (op.args[name] as unknown[]).map((_, k) => this.valueOf(...tensorArg(name, k))),
      shape: (t) => (typeof t === "string" ? tensorArg(t)[0] : t).shape,
      dtype,
      value: <T>(name: string) => fixed((o) => o.args[name]) as T,
      fixed,
      sizes: (read, options) => g.sizes(read(op), read(other), options),
      operand: (name, type) => (isObservedTensor(op.args[name]) ? cast(tensor(name), dtype(name), type) : g.scalar(fixed((o) => o.args[name] as number), type)),
      cast,
    };
  }
}

/**
 * Exports `module` as ONNX (opset 17) from two traced calls of `spec.forward`, in eval mode. An op
 * without an ONNX form, or a value that changes with the batch in a way the graph cannot follow,
 * is an OnnxExportError naming the op and its layer.
 */
export function exportOnnx(module: Module, spec: ExportSpec): OnnxExport {
  const params: Params = { tensors: new Map(), names: new Map() };
  for (const [name, t] of [...module.namedParameters(), ...module.namedBuffers()]) {
    params.tensors.set(t.handle, t);
    params.names.set(t.handle, name);
  }
  const wasTraining = module.training;
  module.eval();
  let a: Trace, b: Trace;
  try {
    [a, b] = TRACE_BATCHES.map((n) => trace(spec, n, params.tensors)) as [Trace, Trace];
  } finally {
    module.train(wasTraining);
  }
  const differs = a.ops.findIndex((op, i) => op.op !== b.ops[i]?.op);
  if (differs >= 0 || a.ops.length !== b.ops.length) {
    const at = differs >= 0 ? differs : Math.min(a.ops.length, b.ops.length);
    throw new OnnxExportError(
      `cannot export to ONNX: the forward runs different ops at batch ${TRACE_BATCHES[0]} and ${TRACE_BATCHES[1]} ` +
        `(op ${at}: ${a.ops[at]?.op ?? "none"} vs ${b.ops[at]?.op ?? "none"}); a graph needs the same ops for every batch`,
    );
  }

  const translation = new Translation(a, b, params, spec.inputs.map((i) => i.name));
  a.ops.forEach((_, i) => translation.emit(i));
  const result = translation.names.get(a.output.handle);
  if (result === undefined) throw new OnnxExportError("cannot export to ONNX: the forward returns a tensor that none of its ops made");
  const g = translation.g;
  g.output(result, spec.output);

  const model = {
    irVersion: 8,
    opsetImport: [{ domain: "", version: OPSET }],
    producerName: "diffprune",
    producerVersion: packageVersion(),
    graph: {
      name: spec.graphName ?? "diffprune",
      node: g.nodes,
      initializer: g.initializers,
      input: spec.inputs.map((input, i) => valueInfo(input.name, a.dtypes.get(a.inputs[i]!.handle)!, a.inputs[i]!.shape, b.inputs[i]!.shape)),
      output: [valueInfo(spec.output, a.dtypes.get(a.output.handle)!, a.output.shape, b.output.shape)],
    },
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  return { bytes: encodeModel(model), opset: OPSET, nodes: g.nodes.length, initializers: g.initializers.length };
}

/** A constant of the graph: its values, or, when it grows with the batch and holds one value, that value expanded. */
function constant(g: OnnxBuilder, a: Constant, b: Constant): string {
  if (same(a.shape, b.shape)) {
    if (!a.bytes.every((v, i) => v === b.bytes[i]))
      throw new Unsupported("a tensor made inside the forward has other values in another call (random?), so it cannot be a constant");
    return g.constant(a.dtype, a.shape, a.bytes);
  }
  const size = a.bytes.length / a.shape.reduce((x, y) => x * y, 1);
  const first = a.bytes.subarray(0, size);
  if (!a.bytes.every((v, i) => v === first[i % size]))
    throw new Unsupported(
      `a tensor made inside the forward has a shape that follows the batch ([${a.shape.join(", ")}] at batch ${TRACE_BATCHES[0]}) and varying values; make it from an input instead`,
    );
  return g.op("Expand", [g.constant(a.dtype, [], first), g.sizes(a.shape, b.shape)]);
}

let version: string | undefined;
const packageVersion = (): string => (version ??= (JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string }).version);

/**
 * A UNet2DModel as ONNX: inputs `sample` float32 [batch, C, H, W] and `timestep` int64 [batch],
 * output `out_sample`; its config.json and (given) its training scheduler's config in the
 * metadata, so that the file alone is enough to sample.
 */
export function exportUNet(model: UNet2DModel, { scheduler = null }: { scheduler?: Scheduler | null } = {}): OnnxExport {
  const c = model.config;
  const metadata: Record<string, string> = { [UNET_CONFIG_KEY]: JSON.stringify(model.savedConfig) };
  if (scheduler) metadata[SCHEDULER_CONFIG_KEY] = JSON.stringify(schedulerConfigToJSON(scheduler.config, scheduler.className));
  const numel = (n: number) => n * c.in_channels * c.sample_size * c.sample_size;
  const inputs: ExportInput[] = [
    { name: "sample", example: (n) => torch.linspace(-1, 1, numel(n)).reshape(n, c.in_channels, c.sample_size, c.sample_size) },
    // distinct timesteps, so nothing is mistaken for one shared by the batch
    { name: "timestep", example: (n) => torch.tensor(Array.from({ length: n }, (_, i) => 1 + 331 * i), { dtype: "int64" }) },
  ];
  // A class-conditional model takes its labels as a third input: int64 [N] (a class table, or
  // "timestep" labels), or float [N, D] vectors for "identity".
  const labels = torch.tidy(() => model.exampleClassLabels(1));
  if (labels) {
    const classes = c.num_class_embeds ?? 1000;
    const identity = labels.dtype !== "int64";
    const width = labels.shape[1] ?? 1;
    labels.dispose();
    inputs.push({
      name: CLASS_LABELS_INPUT,
      example: (n) =>
        identity ? torch.linspace(-1, 1, n * width).reshape(n, width) : torch.tensor(Array.from({ length: n }, (_, i) => (3 + 7 * i) % classes), { dtype: "int64" }),
    });
  }
  return exportOnnx(model, {
    inputs,
    output: "out_sample",
    forward: (sample, timestep, classLabels) => model.forward(sample, timestep, classLabels),
    metadata,
    graphName: "UNet2DModel",
  });
}

/**
 * A latent pipeline's decoder as its own graph: input `latents` [batch, C, h, w] as the UNet makes
 * them, output `image` [batch, C, H, W] (about [-1, 1]). It applies the pipeline's convention
 * (decodeLatents): VQModel decodes (snapping to the codebook), AutoencoderKL decodes latents /
 * scaling_factor. The config is in the metadata (`autoencoder_config`).
 */
export function exportDecoder(autoencoder: Autoencoder, latentSize: number): OnnxExport {
  const c = autoencoder.config;
  const channels = autoencoder.latentChannels;
  const numel = (n: number) => n * channels * latentSize * latentSize;
  return exportOnnx(autoencoder, {
    inputs: [{ name: "latents", example: (n) => torch.linspace(-1, 1, numel(n)).reshape(n, channels, latentSize, latentSize) }],
    output: "image",
    // one chunk whatever the batch, so the graph has no batch-sized slicing
    forward: (latents) => decodeLatents(autoencoder, latents, { batchSize: Number.POSITIVE_INFINITY }),
    metadata: { [AUTOENCODER_CONFIG_KEY]: JSON.stringify(c) },
    graphName: `${autoencoder.constructor.name}Decoder`,
  });
}
