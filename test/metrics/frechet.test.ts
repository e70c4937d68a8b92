// The Frechet distance against closed forms, and the properties FID relies on.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { fitGaussian, frechetDistance, GaussianAccumulator } from "../../src/metrics/index.js";
import { assertClose } from "../helpers/assert.js";

const f64 = (values: number[], shape?: number[]) => torch.tensor(Float64Array.from(values), shape ? { shape } : {});
function diagonal(values: number[]): torch.Tensor {
  const n = values.length;
  const out = new Float64Array(n * n);
  values.forEach((v, i) => (out[i * n + i] = v));
  return f64(Array.from(out), [n, n]);
}
/** A random SPD matrix Q diag(l) Q^T. */
function randomSpd(n: number, seed: number): torch.Tensor {
  torch.manualSeed(seed);
  return torch.tidy(() => {
    const a = torch.randn([n, n], { dtype: "float64" });
    return a.matmul(a.transpose(0, 1)).div(n).add(diagonal(Array(n).fill(0.1)));
  });
}

describe("frechetDistance", () => {
  test("diagonal covariances: ||mu1 - mu2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2", () => {
    const a = [0.5, 2, 3, 0.01];
    const b = [1.5, 0.2, 3, 4];
    const mu1 = [0, 1, 2, 3];
    const mu2 = [1, 1, -1, 0.5];
    const expected =
      mu1.reduce((s, v, i) => s + (v - mu2[i]!) ** 2, 0) + a.reduce((s, v, i) => s + (Math.sqrt(v) - Math.sqrt(b[i]!)) ** 2, 0);
    const d = frechetDistance({ mu: f64(mu1), sigma: diagonal(a) }, { mu: f64(mu2), sigma: diagonal(b) });
    assertClose([d], [expected], 1e-10, "FID");
  });

  test("S2 = c S1 (not diagonal): (1 - sqrt(c))^2 Tr(S1)", () => {
    const s1 = randomSpd(16, 1);
    const mu = f64(Array(16).fill(0));
    const d = frechetDistance({ mu, sigma: s1 }, { mu, sigma: s1.mul(4) });
    assertClose([d], [(1 - 2) ** 2 * torch.trace(s1).item()], 1e-9, "FID");
  });

  test("a set against itself is ~0; the distance is symmetric and rotation-invariant", () => {
    torch.manualSeed(2);
    const x = torch.randn([200, 8]).mul(torch.rand([8]).add(0.1));
    const y = torch.randn([150, 8]).add(0.3);
    const [sx, sy] = [fitGaussian(x), fitGaussian(y)];
    assert.ok(frechetDistance(sx, sx) < 1e-9, `FID(x, x) = ${frechetDistance(sx, sx)}`);
    const dxy = frechetDistance(sx, sy);
    assertClose([frechetDistance(sy, sx)], [dxy], 1e-9, "symmetry");
    const [, q] = torch.eigh(randomSpd(8, 3));
    const rot = (t: torch.Tensor) => fitGaussian(t.double().matmul(q));
    assertClose([frechetDistance(rot(x), rot(y))], [dxy], 1e-8, "rotated");
  });

  test("fewer samples than dimensions (a singular covariance) gives a finite value, no NaN", () => {
    torch.manualSeed(4);
    const a = fitGaussian(torch.randn([10, 64]));
    const b = fitGaussian(torch.randn([12, 64]).add(0.5));
    const d = frechetDistance(a, b);
    assert.ok(Number.isFinite(d) && d > 0, `FID = ${d}`);
    assert.ok(frechetDistance(a, a) < 1e-6, `FID(a, a) = ${frechetDistance(a, a)}`);
  });

  test("an exactly singular covariance (a duplicated feature) gives a finite value", () => {
    torch.manualSeed(6);
    const base = torch.randn([50, 4]);
    const a = fitGaussian(torch.cat([base, base.narrow(1, 0, 1)], 1));
    const b = fitGaussian(torch.randn([50, 5]).mul(2));
    const d = frechetDistance(a, b);
    assert.ok(Number.isFinite(d) && d > 0, `FID = ${d}`);
  });

  test("mismatched dimensions are an error that names the cause", () => {
    const a = fitGaussian(torch.randn([5, 4]));
    const b = fitGaussian(torch.randn([5, 3]));
    assert.throws(() => frechetDistance(a, b), /same feature extractor/);
  });
});

describe("Gaussian fits", () => {
  test("the accumulator over batches equals numpy.cov of all features (unbiased)", () => {
    torch.manualSeed(5);
    const x = torch.randn([300, 6]).mul(3).add(100); // a large offset: the shift keeps the digits
    const acc = new GaussianAccumulator();
    for (const part of x.split(70, 0)) acc.add(part);
    const s = acc.stats();
    const xd = x.double();
    const mu = xd.mean(0);
    const xc = xd.sub(mu);
    const cov = xc.transpose(0, 1).matmul(xc).div(299);
    assert.equal(s.count, 300);
    assertClose(s.mu, mu, 1e-10, "mean");
    assertClose(s.sigma, cov, 1e-9, "covariance");
    assert.equal(s.sigma.dtype, "float64");
  });

  test("one vector is not enough", () => {
    assert.throws(() => fitGaussian(torch.randn([1, 3])), /at least 2/);
  });
});
