// Explicit memory management: tidy/keep/dispose semantics, and a long training loop that leaves
// the live-tensor count where it started and resident memory bounded.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";

const live = (): number => torch.memory().numTensors;

describe("tidy, keep, dispose", () => {
  test("tidy frees everything but what it returns, through arrays and objects", () => {
    const before = live();
    const out = torch.tidy(() => {
      const a = torch.ones([4]);
      const b = a.add(1);
      a.mul(3); // garbage
      return { sum: b.sum(), parts: [b, b.mul(2)] };
    });
    assert.equal(live(), before + 3);
    assert.equal(out.sum.item(), 8);
    assert.deepEqual(out.parts[1]!.toArray(), [4, 4, 4, 4]);
    torch.dispose(out);
    assert.equal(live(), before);
    assert.ok(out.sum.isDisposed);
  });

  test("scopes nest: a returned tensor belongs to the enclosing scope", () => {
    const before = live();
    let inner: Tensor | undefined;
    torch.tidy(() => {
      inner = torch.tidy(() => torch.ones([2]).add(1));
      assert.ok(!inner.isDisposed);
      return undefined;
    });
    assert.ok(inner!.isDisposed);
    assert.equal(live(), before);
  });

  test("keep lets a tensor outlive its scope; memory() counts bytes", () => {
    const before = torch.memory();
    let kept: Tensor | undefined;
    torch.tidy(() => {
      kept = torch.keep(torch.zeros([10], { dtype: "float64" }));
      torch.zeros([100]);
    });
    assert.ok(!kept!.isDisposed);
    assert.deepEqual(torch.memory(), { numTensors: before.numTensors + 1, numBytes: before.numBytes + 80 });
    kept!.dispose();
    assert.deepEqual(torch.memory(), before);
  });

  test("using disposes at the end of the block", () => {
    const before = live();
    {
      using t = torch.ones([3]);
      assert.equal(t.sum().item(), 3);
    }
    // the sum() result is not in a scope: only the `using` tensor is gone
    assert.ok(live() <= before + 1);
  });

  test("tensors outside any scope are freed by the GC backstop", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const collect = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 10)); // FinalizationRegistry callbacks run as tasks
      }
    };
    await collect(); // earlier tests' unscoped garbage first
    const before = live();
    for (let i = 0; i < 100; i++) torch.ones([1000]);
    assert.equal(live(), before + 100);
    await collect();
    assert.equal(live(), before);
  });
});

describe("a long training loop", () => {
  test("10,000 steps inside tidy leave memory() unchanged and RSS bounded", () => {
    torch.manualSeed(0);
    const init = (shape: number[]): Tensor => torch.keep(torch.randn(shape).mul(0.3)).requiresGrad_();
    const params = [init([4, 1, 3, 3]), init([4]), init([1, 4, 3, 3]), init([1])];
    const m = params.map((p) => torch.keep(torch.zerosLike(p)));
    const v = params.map((p) => torch.keep(torch.zerosLike(p)));
    const x = torch.keep(torch.randn([2, 1, 8, 8]));
    const target = torch.keep(x.flip(3));
    const step = (k: number): number =>
      torch.tidy(() => {
        const [w1, b1, w2, b2] = params as [Tensor, Tensor, Tensor, Tensor];
        const h = torch.conv2d(x, w1, b1, { padding: 1 }).silu();
        const loss = torch.mseLoss(torch.conv2d(h, w2, b2, { padding: 1 }), target);
        loss.backward();
        params[0]!.grad!.abs().sum(); // reading grads makes handles too
        torch.clipGradNorm(params, 10);
        torch.adamwStep(params, m, v, k, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
        torch.zeroGrad(params);
        return loss.item();
      });
    const first = step(1);
    const start = torch.memory();
    for (let k = 2; k <= 1000; k++) step(k);
    const rssWarm = process.memoryUsage().rss;
    let last = first;
    for (let k = 1001; k <= 10000; k++) last = step(k);
    const rssGrowth = process.memoryUsage().rss - rssWarm;
    assert.deepEqual(torch.memory(), start);
    assert.ok(rssGrowth < 32 * 2 ** 20, `RSS grew by ${(rssGrowth / 2 ** 20).toFixed(1)} MiB over 9,000 steps`);
    assert.ok(last < first, `loss ${first} -> ${last}`);
    torch.dispose([params, m, v, x, target]);
  });

  test("sequential frees each intermediate once the next layer has used it, keeps the input, and backward still works", () => {
    torch.tidy(() => {
      const x = torch.tensor([1, -2, 3]).requiresGrad_(true);
      const live = torch.memory().numTensors;
      const seen: Tensor[] = [];
      const y = torch.sequential(
        x,
        (t) => (seen.push(t), t.mul(2)),
        (t) => (seen.push(t), t), // an identity layer hands its input on: not freed
        (t) => (seen.push(t), t.silu()),
        (t) => (seen.push(t), t.sum()),
      );
      assert.equal(seen[0], x);
      assert.equal(x.isDisposed, false);
      assert.ok(seen.slice(1).every((t) => t.isDisposed), "every intermediate is freed");
      assert.equal(torch.memory().numTensors - live, 1, "only the result is left");
      y.backward();
      // d/dx sum(silu(2x)) = 2 silu'(2x)
      const expected = [1, -2, 3].map((v) => {
        const s = 1 / (1 + Math.exp(-2 * v));
        return 2 * (s + 2 * v * s * (1 - s));
      });
      x.grad!.toArray().forEach((g, i) => assert.ok(Math.abs(g - expected[i]!) < 1e-5, `${g} vs ${expected[i]}`));
    });
  });
});

