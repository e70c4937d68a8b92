// Inception-v3 as pytorch-fid builds it for FID (fid_inception_v3 + InceptionV3): torchvision's
// Inception3 with the TensorFlow-port patches (FIDInceptionA/C/E_1 average-pool without the
// padded zeros, FIDInceptionE_2 max-pools), cut after the final average pool: 2048-d features.
// Modules carry torchvision's names (Conv2d_1a_3x3.conv.weight, Mixed_5b.branch1x1.bn.running_mean,
// ...), the keys of pytorch-fid's weights file pt_inception-2015-12-05-6726825d.pth; its
// InceptionV3 wrapper's names (blocks.0.0.conv.weight, ...) load too. No weights ship here:
// users convert that file to safetensors and pass it.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import { BatchNorm2d, Module } from "../../nn/index.js";
import type { FeatureExtractor } from "./extractor.js";
import { resizeBilinear } from "./resize.js";
import { readWeights } from "./weights.js";

type Pair = [number, number];
const pair = (v: number | Pair): Pair => (typeof v === "number" ? [v, v] : v);

/** A bias-free convolution with any kernel shape (the 1x7 / 7x1 factorised ones included). */
class Conv extends Module {
  readonly stride: number;
  readonly padding: Pair;
  constructor(inChannels: number, outChannels: number, kernel: Pair, stride: number, padding: Pair) {
    super();
    this.stride = stride;
    this.padding = padding;
    this.registerParameter("weight", torch.zeros([outChannels, inChannels, ...kernel]));
  }
  forward(x: Tensor): Tensor {
    return torch.conv2d(x, this.param("weight"), null, { stride: this.stride, padding: this.padding });
  }
}

/** torchvision's BasicConv2d: conv (no bias) -> BatchNorm (eps 0.001) -> ReLU. */
class BasicConv2d extends Module {
  readonly conv: Conv;
  readonly bn: BatchNorm2d;
  constructor(inChannels: number, outChannels: number, kernel: number | Pair, { stride = 1, padding = 0 as number | Pair } = {}) {
    super();
    this.conv = this.registerModule("conv", new Conv(inChannels, outChannels, pair(kernel), stride, pair(padding)));
    this.bn = this.registerModule("bn", new BatchNorm2d(outChannels, { eps: 0.001 }));
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() => this.bn.forward(this.conv.forward(x)).relu());
  }
}

/** F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False): TensorFlow's average pool. */
function avgPoolExcludingPad(x: Tensor): Tensor {
  return torch.tidy(() => {
    const counts = torch.avgPool2d(torch.ones([1, 1, x.shape[2]!, x.shape[3]!], { dtype: x.dtype }), 3, 1, 1);
    return torch.avgPool2d(x, 3, 1, 1).div(counts);
  });
}

abstract class Block extends Module {
  protected conv(name: string, ...args: ConstructorParameters<typeof BasicConv2d>): BasicConv2d {
    return this.registerModule(name, new BasicConv2d(...args));
  }
  abstract forward(x: Tensor): Tensor;
}

/** FIDInceptionA (Mixed_5b/c/d). */
class FIDInceptionA extends Block {
  readonly branch1x1; readonly branch5x5_1; readonly branch5x5_2;
  readonly branch3x3dbl_1; readonly branch3x3dbl_2; readonly branch3x3dbl_3; readonly branch_pool;
  constructor(inChannels: number, poolFeatures: number) {
    super();
    this.branch1x1 = this.conv("branch1x1", inChannels, 64, 1);
    this.branch5x5_1 = this.conv("branch5x5_1", inChannels, 48, 1);
    this.branch5x5_2 = this.conv("branch5x5_2", 48, 64, 5, { padding: 2 });
    this.branch3x3dbl_1 = this.conv("branch3x3dbl_1", inChannels, 64, 1);
    this.branch3x3dbl_2 = this.conv("branch3x3dbl_2", 64, 96, 3, { padding: 1 });
    this.branch3x3dbl_3 = this.conv("branch3x3dbl_3", 96, 96, 3, { padding: 1 });
    this.branch_pool = this.conv("branch_pool", inChannels, poolFeatures, 1);
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() =>
      torch.cat([
        this.branch1x1.forward(x),
        this.branch5x5_2.forward(this.branch5x5_1.forward(x)),
        this.branch3x3dbl_3.forward(this.branch3x3dbl_2.forward(this.branch3x3dbl_1.forward(x))),
        this.branch_pool.forward(avgPoolExcludingPad(x)),
      ], 1),
    );
  }
}

/** torchvision's InceptionB (Mixed_6a): grid reduction 35 -> 17. */
class InceptionB extends Block {
  readonly branch3x3; readonly branch3x3dbl_1; readonly branch3x3dbl_2; readonly branch3x3dbl_3;
  constructor(inChannels: number) {
    super();
    this.branch3x3 = this.conv("branch3x3", inChannels, 384, 3, { stride: 2 });
    this.branch3x3dbl_1 = this.conv("branch3x3dbl_1", inChannels, 64, 1);
    this.branch3x3dbl_2 = this.conv("branch3x3dbl_2", 64, 96, 3, { padding: 1 });
    this.branch3x3dbl_3 = this.conv("branch3x3dbl_3", 96, 96, 3, { stride: 2 });
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() =>
      torch.cat([
        this.branch3x3.forward(x),
        this.branch3x3dbl_3.forward(this.branch3x3dbl_2.forward(this.branch3x3dbl_1.forward(x))),
        torch.maxPool2d(x, 3, 2),
      ], 1),
    );
  }
}

/** FIDInceptionC (Mixed_6b..6e): factorised 7x7 convolutions. */
class FIDInceptionC extends Block {
  readonly branch1x1; readonly branch7x7_1; readonly branch7x7_2; readonly branch7x7_3;
  readonly branch7x7dbl_1; readonly branch7x7dbl_2; readonly branch7x7dbl_3; readonly branch7x7dbl_4; readonly branch7x7dbl_5;
  readonly branch_pool;
  constructor(inChannels: number, c7: number) {
    super();
    const row = { padding: [0, 3] as Pair };
    const col = { padding: [3, 0] as Pair };
    this.branch1x1 = this.conv("branch1x1", inChannels, 192, 1);
    this.branch7x7_1 = this.conv("branch7x7_1", inChannels, c7, 1);
    this.branch7x7_2 = this.conv("branch7x7_2", c7, c7, [1, 7], row);
    this.branch7x7_3 = this.conv("branch7x7_3", c7, 192, [7, 1], col);
    this.branch7x7dbl_1 = this.conv("branch7x7dbl_1", inChannels, c7, 1);
    this.branch7x7dbl_2 = this.conv("branch7x7dbl_2", c7, c7, [7, 1], col);
    this.branch7x7dbl_3 = this.conv("branch7x7dbl_3", c7, c7, [1, 7], row);
    this.branch7x7dbl_4 = this.conv("branch7x7dbl_4", c7, c7, [7, 1], col);
    this.branch7x7dbl_5 = this.conv("branch7x7dbl_5", c7, 192, [1, 7], row);
    this.branch_pool = this.conv("branch_pool", inChannels, 192, 1);
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      const seq = (h: Tensor, layers: BasicConv2d[]) => layers.reduce((t, l) => l.forward(t), h);
      return torch.cat([
        this.branch1x1.forward(x),
        seq(x, [this.branch7x7_1, this.branch7x7_2, this.branch7x7_3]),
        seq(x, [this.branch7x7dbl_1, this.branch7x7dbl_2, this.branch7x7dbl_3, this.branch7x7dbl_4, this.branch7x7dbl_5]),
        this.branch_pool.forward(avgPoolExcludingPad(x)),
      ], 1);
    });
  }
}

/** torchvision's InceptionD (Mixed_7a): grid reduction 17 -> 8. */
class InceptionD extends Block {
  readonly branch3x3_1; readonly branch3x3_2;
  readonly branch7x7x3_1; readonly branch7x7x3_2; readonly branch7x7x3_3; readonly branch7x7x3_4;
  constructor(inChannels: number) {
    super();
    this.branch3x3_1 = this.conv("branch3x3_1", inChannels, 192, 1);
    this.branch3x3_2 = this.conv("branch3x3_2", 192, 320, 3, { stride: 2 });
    this.branch7x7x3_1 = this.conv("branch7x7x3_1", inChannels, 192, 1);
    this.branch7x7x3_2 = this.conv("branch7x7x3_2", 192, 192, [1, 7], { padding: [0, 3] });
    this.branch7x7x3_3 = this.conv("branch7x7x3_3", 192, 192, [7, 1], { padding: [3, 0] });
    this.branch7x7x3_4 = this.conv("branch7x7x3_4", 192, 192, 3, { stride: 2 });
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() =>
      torch.cat([
        this.branch3x3_2.forward(this.branch3x3_1.forward(x)),
        [this.branch7x7x3_1, this.branch7x7x3_2, this.branch7x7x3_3, this.branch7x7x3_4].reduce((t, l) => l.forward(t), x),
        torch.maxPool2d(x, 3, 2),
      ], 1),
    );
  }
}

/** FIDInceptionE_1 (Mixed_7b, average pool) and FIDInceptionE_2 (Mixed_7c, max pool). */
class FIDInceptionE extends Block {
  readonly branch1x1; readonly branch3x3_1; readonly branch3x3_2a; readonly branch3x3_2b;
  readonly branch3x3dbl_1; readonly branch3x3dbl_2; readonly branch3x3dbl_3a; readonly branch3x3dbl_3b; readonly branch_pool;
  constructor(inChannels: number, readonly pool: "avg" | "max") {
    super();
    this.branch1x1 = this.conv("branch1x1", inChannels, 320, 1);
    this.branch3x3_1 = this.conv("branch3x3_1", inChannels, 384, 1);
    this.branch3x3_2a = this.conv("branch3x3_2a", 384, 384, [1, 3], { padding: [0, 1] });
    this.branch3x3_2b = this.conv("branch3x3_2b", 384, 384, [3, 1], { padding: [1, 0] });
    this.branch3x3dbl_1 = this.conv("branch3x3dbl_1", inChannels, 448, 1);
    this.branch3x3dbl_2 = this.conv("branch3x3dbl_2", 448, 384, 3, { padding: 1 });
    this.branch3x3dbl_3a = this.conv("branch3x3dbl_3a", 384, 384, [1, 3], { padding: [0, 1] });
    this.branch3x3dbl_3b = this.conv("branch3x3dbl_3b", 384, 384, [3, 1], { padding: [1, 0] });
    this.branch_pool = this.conv("branch_pool", inChannels, 192, 1);
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      const b3 = this.branch3x3_1.forward(x);
      const d3 = this.branch3x3dbl_2.forward(this.branch3x3dbl_1.forward(x));
      // pytorch-fid: the TF graph's last block max-pools here (likely a bug there, kept for comparability).
      const pooled = this.pool === "avg" ? avgPoolExcludingPad(x) : torch.maxPool2d(x, 3, 1, 1);
      return torch.cat([
        this.branch1x1.forward(x),
        this.branch3x3_2a.forward(b3), this.branch3x3_2b.forward(b3),
        this.branch3x3dbl_3a.forward(d3), this.branch3x3dbl_3b.forward(d3),
        this.branch_pool.forward(pooled),
      ], 1);
    });
  }
}

/** pytorch-fid's InceptionV3 wrapper: blocks.i.j -> torchvision's module names. */
const WRAPPER_NAMES = [
  ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"],
  ["Conv2d_3b_1x1", "Conv2d_4a_3x3"],
  ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"],
  ["Mixed_7a", "Mixed_7b", "Mixed_7c"],
];

/** A weights file's tensors under this module's names: wrapper names mapped, fc and BN counters dropped. */
export function inceptionStateDict(tensors: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [key, t] of tensors) {
    if (key.startsWith("fc.") || key.endsWith(".num_batches_tracked") || key.startsWith("AuxLogits.")) continue;
    const m = /^blocks\.(\d+)\.(\d+)\.(.*)$/.exec(key);
    const name = m ? WRAPPER_NAMES[Number(m[1])]?.[Number(m[2])] : undefined;
    out.set(m && name ? `${name}.${m[3]}` : key, t);
  }
  return out;
}

export class InceptionV3 extends Module {
  readonly layers: [string, (x: Tensor) => Tensor][] = [];

  /**
   * With `randomInit` (default) the convolutions get He-normal weights, which keep activations
   * O(1) through the 94 layers (enough to test shapes); without it they stay zero, for weights
   * about to be loaded (skipping 22M random draws).
   */
  constructor({ randomInit = true }: { randomInit?: boolean } = {}) {
    super();
    const add = <M extends Module & { forward(x: Tensor): Tensor }>(name: string, m: M) => {
      this.registerModule(name, m);
      this.layers.push([name, (x) => m.forward(x)]);
    };
    const pool = (name: string) => this.layers.push([name, (x) => torch.maxPool2d(x, 3, 2)]);
    add("Conv2d_1a_3x3", new BasicConv2d(3, 32, 3, { stride: 2 }));
    add("Conv2d_2a_3x3", new BasicConv2d(32, 32, 3));
    add("Conv2d_2b_3x3", new BasicConv2d(32, 64, 3, { padding: 1 }));
    pool("maxpool1");
    add("Conv2d_3b_1x1", new BasicConv2d(64, 80, 1));
    add("Conv2d_4a_3x3", new BasicConv2d(80, 192, 3));
    pool("maxpool2");
    add("Mixed_5b", new FIDInceptionA(192, 32));
    add("Mixed_5c", new FIDInceptionA(256, 64));
    add("Mixed_5d", new FIDInceptionA(288, 64));
    add("Mixed_6a", new InceptionB(288));
    add("Mixed_6b", new FIDInceptionC(768, 128));
    add("Mixed_6c", new FIDInceptionC(768, 160));
    add("Mixed_6d", new FIDInceptionC(768, 160));
    add("Mixed_6e", new FIDInceptionC(768, 192));
    add("Mixed_7a", new InceptionD(768));
    add("Mixed_7b", new FIDInceptionE(1280, "avg"));
    add("Mixed_7c", new FIDInceptionE(2048, "max"));
    if (randomInit)
      torch.noGrad(() => {
        for (const [name, w] of this.namedParameters())
          if (name.endsWith(".conv.weight")) torch.tidy(() => w.copy_(torch.randnLike(w).mul(Math.sqrt(2 / (w.numel / w.shape[0]!)))));
      });
    this.eval();
  }

  /**
   * Pool features [N, 2048] of images [N, C, H, W] in [-1, 1] (C = 1 or 3), with pytorch-fid's
   * preprocessing: bilinear resize to 299x299 (align_corners=False) and inputs in [-1, 1]
   * (pytorch-fid maps [0, 1] to [-1, 1] after the resize; resizing is affine, so the order
   * does not matter). Gray images are repeated to RGB, as PIL's convert("RGB") does.
   */
  forward(images: Tensor): Tensor {
    const c = images.shape[1];
    if (images.ndim !== 4 || (c !== 1 && c !== 3)) throw new Error(`InceptionV3 takes images [N, 1 or 3, H, W], got [${images.shape.join(", ")}]`);
    return torch.tidy(() => {
      let x = images.float().clamp(-1, 1);
      if (c === 1) x = x.expand(-1, 3, -1, -1);
      x = resizeBilinear(x, 299, 299);
      for (const [, layer] of this.layers) x = layer(x);
      return torch.adaptiveAvgPool2d(x, 1).flatten(1);
    });
  }
}

/** Inception-v3 pool features as a FID extractor, from user-supplied weights. */
export class InceptionExtractor implements FeatureExtractor {
  readonly name = "inception-v3-fid";
  readonly featureDim = 2048;
  readonly inputShape = null;
  readonly model: InceptionV3;
  readonly weightsHash: string;

  constructor(model: InceptionV3, weightsHash: string) {
    this.model = model;
    this.weightsHash = weightsHash;
  }

  /** Loads a safetensors conversion of pytorch-fid's pt_inception-2015-12-05-6726825d.pth. */
  static load(path: string): InceptionExtractor {
    const { tensors, sha256 } = readWeights(path, "Inception-v3 weights");
    const model = torch.noGrad(() => new InceptionV3({ randomInit: false }));
    try {
      model.loadStateDict(inceptionStateDict(tensors));
    } catch (err) {
      model.dispose();
      throw new Error(
        `${path}: ${err instanceof Error ? err.message : String(err)}; expected pytorch-fid's FID Inception weights ` +
          `(pt_inception-2015-12-05-6726825d.pth) saved as safetensors with their parameter names`,
      );
    } finally {
      torch.dispose([...tensors.values()]);
    }
    return new InceptionExtractor(model, sha256);
  }

  features(images: Tensor): Tensor {
    return torch.noGrad(() => this.model.forward(images));
  }
}
