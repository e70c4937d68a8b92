// The Frechet distance between two Gaussians (FID's formula), and Gaussian fits of feature sets.
// d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). S1 S2 is not symmetric, so instead of a
// general matrix square root (scipy's sqrtm, which pytorch-fid uses and which needs an eps fix-up
// for singular covariances) we use Tr((S1 S2)^(1/2)) = Tr((A S2 A)^(1/2)) with A = S1^(1/2): A S2 A
// is symmetric positive semi-definite, so both roots come from symmetric eigendecompositions
// (float64), and tiny negative eigenvalues from rounding are clamped to 0. No NaN, no eps.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

/** Mean [D] and covariance [D, D] (float64) of `count` feature vectors. */
export interface GaussianStats {
  mu: Tensor;
  sigma: Tensor;
  count: number;
}

/**
 * Accumulates feature batches into a Gaussian fit without holding them: running sums in float64,
 * shifted by the first batch's mean so the covariance does not lose digits to cancellation.
 */
export class GaussianAccumulator {
  count = 0;
  #shift: Tensor | null = null;
  #sum: Tensor | null = null;
  #outer: Tensor | null = null;

  /** Adds features [N, D]. */
  add(features: Tensor): void {
    if (features.ndim !== 2) throw new Error(`GaussianAccumulator: expected features [N, D], got [${features.shape.join(", ")}]`);
    if (this.#shift && features.shape[1] !== this.#shift.shape[0])
      throw new Error(`GaussianAccumulator: features have ${features.shape[1]} dimensions, earlier ones ${this.#shift.shape[0]}`);
    if (features.shape[0] === 0) return;
    torch.noGrad(() => {
      const x = torch.tidy(() => features.detach().double());
      this.#shift ??= torch.keep(x.mean(0));
      const [sum, outer] = torch.tidy(() => {
        const xc = x.sub(this.#shift!);
        const s = xc.sum(0);
        const o = xc.transpose(0, 1).matmul(xc);
        return this.#sum ? [this.#sum.add(s), this.#outer!.add(o)] : [s, o];
      });
      x.dispose();
      torch.dispose([this.#sum, this.#outer]);
      this.#sum = torch.keep(sum);
      this.#outer = torch.keep(outer);
    });
    this.count += features.shape[0]!;
  }

  /** The fit so far (unbiased covariance, as numpy.cov); needs at least 2 samples. */
  stats(): GaussianStats {
    const n = this.count;
    if (n < 2) throw new Error(`a Gaussian fit needs at least 2 feature vectors, got ${n}`);
    const { mu, sigma } = torch.tidy(() => {
      const m = this.#sum!.div(n);
      const sigma = this.#outer!.sub(m.unsqueeze(1).matmul(m.unsqueeze(0)).mul(n)).div(n - 1);
      return { mu: this.#shift!.add(m), sigma: sigma.add(sigma.transpose(0, 1)).mul(0.5) };
    });
    return { mu, sigma, count: n };
  }

  dispose(): void {
    torch.dispose([this.#shift, this.#sum, this.#outer]);
    this.#shift = this.#sum = this.#outer = null;
  }
}

/** The Gaussian fit of features [N, D]. */
export function fitGaussian(features: Tensor): GaussianStats {
  const acc = new GaussianAccumulator();
  try {
    acc.add(features);
    return acc.stats();
  } finally {
    acc.dispose();
  }
}

/** The symmetric PSD square root of a symmetric matrix (negative eigenvalues clamped to 0). */
export function sqrtmSymmetric(s: Tensor): Tensor {
  return torch.tidy(() => {
    const [l, q] = torch.eigh(s);
    return q.mul(l.clamp(0).sqrt()).matmul(q.transpose(0, 1));
  });
}

/** The squared Frechet distance between two Gaussians (FID when fitted to Inception features). */
export function frechetDistance(a: Pick<GaussianStats, "mu" | "sigma">, b: Pick<GaussianStats, "mu" | "sigma">): number {
  const d = a.mu.shape[0];
  if (a.mu.ndim !== 1 || a.sigma.shape.join() !== `${d},${d}` || b.mu.shape.join() !== `${d}` || b.sigma.shape.join() !== `${d},${d}`)
    throw new Error(
      `frechetDistance: mismatched statistics (mu [${a.mu.shape}], sigma [${a.sigma.shape}] vs mu [${b.mu.shape}], sigma [${b.sigma.shape}]); ` +
        `both sides must come from the same feature extractor`,
    );
  const value = torch.noGrad(() =>
    torch.tidy(() => {
      const [mu1, s1, mu2, s2] = [a.mu, a.sigma, b.mu, b.sigma].map((t) => t.double()) as [Tensor, Tensor, Tensor, Tensor];
      const meanTerm = mu1.sub(mu2).square().sum().item();
      const root = sqrtmSymmetric(s1);
      const m = root.matmul(s2).matmul(root);
      const [l] = torch.eigh(m.add(m.transpose(0, 1)).mul(0.5));
      const trSqrt = l.clamp(0).sqrt().sum().item();
      return meanTerm + torch.trace(s1).item() + torch.trace(s2).item() - 2 * trSqrt;
    }),
  );
  if (!Number.isFinite(value)) throw new Error("frechetDistance: the statistics hold NaN or infinite values; check the features");
  // Mathematically >= 0; a tiny negative value is rounding (a set against itself).
  return Math.max(0, value);
}
