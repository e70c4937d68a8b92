// Exported models in onnxruntime (its CPU provider, from the onnxruntime-node package): a session
// that takes and returns diffprune tensors, and a UNet that samples with diffprune's schedulers
// (generateAsync) from the config stored in the file.
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
import * as torch from "../torch/index.js";
import type { AnyTypedArray, DType, Tensor } from "../torch/index.js";
import { resolveUNet2DConfig, type UNet2DConfig } from "../models/index.js";
import { classLabelTensor, DDPMScheduler, schedulerFromConfig, type AsyncDenoiser, type Scheduler } from "../diffusion/index.js";
import { CLASS_LABELS_INPUT, SCHEDULER_CONFIG_KEY, UNET_CONFIG_KEY } from "./exporter.js";
import { decodeMetadata } from "./proto.js";

const ORT_TYPE: Partial<Record<DType, "float32" | "float64" | "int64" | "int32" | "uint8" | "bool">> = {
  float32: "float32", float64: "float64", int64: "int64", int32: "int32", uint8: "uint8", bool: "bool",
};

export interface OnnxSessionOptions {
  /** onnxruntime's intra-op threads; default libtorch's (DIFFPRUNE_NUM_THREADS or the cores). */
  numThreads?: number;
}

/** An onnxruntime inference session on the CPU. */
export class OnnxSession {
  private constructor(readonly session: ort.InferenceSession) {}

  /** A session for an .onnx file's bytes (or its path). */
  static async create(model: Uint8Array | string, { numThreads = torch.getNumThreads() }: OnnxSessionOptions = {}): Promise<OnnxSession> {
    const options: ort.InferenceSession.SessionOptions = { executionProviders: ["cpu"], intraOpNumThreads: numThreads, interOpNumThreads: 1 };
    const session = typeof model === "string" ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
    return new OnnxSession(session);
  }

  /** Runs the graph on `inputs` (by input name); returns its outputs by name, as new tensors. */
  async run(inputs: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(inputs)) {
      const type = ORT_TYPE[t.dtype];
      if (!type) throw new TypeError(`OnnxSession.run: input ${name} has dtype ${t.dtype}, which onnxruntime does not take`);
      feeds[name] = new ort.Tensor(type, t.toTypedArray() as never, [...t.shape]);
    }
    const results = await this.session.run(feeds);
    return Object.fromEntries(Object.entries(results).map(([name, r]) => [name, fromOrt(name, r)]));
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

function fromOrt(name: string, r: ort.Tensor): Tensor {
  const dtype = (Object.keys(ORT_TYPE) as DType[]).find((d) => ORT_TYPE[d] === r.type);
  if (dtype === undefined || !ArrayBuffer.isView(r.data)) throw new TypeError(`OnnxSession.run: output ${name} has type ${r.type}, which diffprune tensors do not hold`);
  return torch.tensor(r.data as AnyTypedArray, { dtype, shape: [...r.dims] });
}

/** An exported UNet2DModel in onnxruntime: what generateAsync samples with. */
export class OnnxUNet implements AsyncDenoiser {
  /** `session` runs a graph that exportUNet wrote; `config` is the UNet's (from the file's metadata). */
  constructor(
    readonly session: OnnxSession,
    readonly config: UNet2DConfig,
  ) {}

  /**
   * Predicted noise for `sample` [B, C, H, W] at `timestep` (one for the batch, or int64 [B]);
   * a class-conditional model takes `classLabels` as UNet2DModel.forward does.
   */
  async forward(sample: Tensor, timestep: number | Tensor, classLabels?: Tensor | number): Promise<Tensor> {
    const batch = sample.shape[0]!;
    const inputs: Record<string, Tensor> = {
      sample: sample.float(),
      timestep: typeof timestep === "number" ? torch.full([batch], timestep, { dtype: "int64" }) : timestep.to("int64"),
    };
    const labels = classLabelTensor(this.config, classLabels, batch, "OnnxUNet");
    if (labels) inputs[CLASS_LABELS_INPUT] = labels; // a new tensor, disposed with the inputs
    try {
      return (await this.session.run(inputs)).out_sample!;
    } finally {
      torch.dispose(inputs);
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * Loads an .onnx file that `diffprune export` wrote: the UNet in onnxruntime, and the training
 * scheduler stored beside it (diffusers' DDPM defaults when the file has none).
 */
export async function loadOnnxPipeline(file: string, options: OnnxSessionOptions = {}): Promise<{ model: OnnxUNet; scheduler: Scheduler }> {
  const bytes = readFileSync(file);
  let metadata: Map<string, string>;
  try {
    metadata = decodeMetadata(bytes);
  } catch (err) {
    throw new Error(`${file} is not an ONNX model (${err instanceof Error ? err.message : String(err)})`);
  }
  const unet = metadata.get(UNET_CONFIG_KEY);
  if (unet === undefined) throw new Error(`${file} has no ${UNET_CONFIG_KEY} in its metadata: take an .onnx file written by diffprune export`);
  const config = resolveUNet2DConfig(JSON.parse(unet) as Record<string, unknown>, `${file} (${UNET_CONFIG_KEY})`);
  const schedulerConfig = metadata.get(SCHEDULER_CONFIG_KEY);
  const session = await OnnxSession.create(bytes, options);
  const scheduler = schedulerConfig === undefined ? new DDPMScheduler() : schedulerFromConfig(JSON.parse(schedulerConfig) as Record<string, unknown>);
  return { model: new OnnxUNet(session, config), scheduler };
}
