// The engine's smoke job: a small conv net learns epsilon-prediction (the diffusion training
// objective) on synthetic images, trained with the native AdamW kernel; the whole engine working
// from TypeScript: creation, conv2d, autograd, optimizer kernels and tidy-managed memory.
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";

export interface SmokeOptions {
  steps?: number;
  batchSize?: number;
  seed?: number;
  /** Called every `logEvery` steps with the mean loss since the last call. */
  onLog?: (step: number, loss: number) => void;
  logEvery?: number;
}

interface ConvNet {
  params: Tensor[];
  forward(x: Tensor): Tensor;
}

function convNet(channels: number): ConvNet {
  // Kaiming-uniform-like init keeps the first steps stable.
  const conv = (cin: number, cout: number): [Tensor, Tensor] => {
    const bound = 1 / Math.sqrt(cin * 9);
    const w = torch.tidy(() => torch.keep(torch.rand([cout, cin, 3, 3]).mul(2 * bound).sub(bound))).requiresGrad_();
    const b = torch.keep(torch.zeros([cout])).requiresGrad_();
    return [w, b];
  };
  const [w1, b1] = conv(1, channels);
  const [w2, b2] = conv(channels, channels);
  const [w3, b3] = conv(channels, 1);
  return {
    params: [w1, b1, w2, b2, w3, b3],
    forward: (x) => {
      const h1 = torch.conv2d(x, w1, b1, { padding: 1 }).silu();
      const h2 = torch.conv2d(h1, w2, b2, { padding: 1 }).silu();
      return torch.conv2d(h2, w3, b3, { padding: 1 });
    },
  };
}

/** Smooth random images in [-1, 1]: blurred noise, so there is structure to learn. */
function images(batch: number): Tensor {
  return torch.tidy(() => {
    const x = torch.avgPool2d(torch.randn([batch, 1, 20, 20]), 5, 1, 0); // 16x16
    return x.div(x.abs().max().add(1e-6));
  });
}

/** Trains for `steps` steps; returns the losses of every step. */
export function engineSmoke(options: SmokeOptions = {}): number[] {
  const { steps = 300, batchSize = 16, seed = 0, onLog, logEvery = 25 } = options;
  torch.manualSeed(seed);
  const net = convNet(16);
  const m = net.params.map((p) => torch.keep(torch.zerosLike(p)));
  const v = net.params.map((p) => torch.keep(torch.zerosLike(p)));
  const losses: number[] = [];
  let window = 0;
  for (let step = 1; step <= steps; step++) {
    const loss = torch.tidy(() => {
      const x0 = images(batchSize);
      const noise = torch.randnLike(x0);
      // A noisy image at a random noise level; the net predicts the noise.
      const level = torch.rand([batchSize, 1, 1, 1]);
      const xt = x0.mul(level.neg().add(1).sqrt()).add(noise.mul(level.sqrt()));
      const l = torch.mseLoss(net.forward(xt), noise);
      l.backward();
      torch.clipGradNorm(net.params, 1.0);
      torch.adamwStep(net.params, m, v, step, { lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
      torch.zeroGrad(net.params);
      return l.item();
    });
    losses.push(loss);
    window += loss;
    if (onLog && step % logEvery === 0) {
      onLog(step, window / logEvery);
      window = 0;
    }
  }
  torch.dispose([net.params, m, v]);
  return losses;
}
