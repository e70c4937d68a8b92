// A process of the collectives tests (started by collectives.test.ts with DIFFPRUNE_TEST_WORKER
// set; does nothing otherwise, so the test runner may load it). Prints one JSON line of results.
import * as torch from "../../src/torch/index.js";
import { UNet2DModel } from "../../src/models/index.js";
import { DDPMScheduler } from "../../src/diffusion/index.js";
import { accumulateGradients, DependencyGraph, Importance, pruningGroups, unetForward } from "../../src/pruning/index.js";

const spec = process.env.DIFFPRUNE_TEST_WORKER;
if (spec) {
  const { scenario, rank, worldSize, port, timeout, model: modelDir } = JSON.parse(spec) as { scenario: string; rank: number; worldSize: number; port: number; timeout: number; model?: string };
  const dist = torch.distributed;
  dist.initProcessGroup({ backend: "gloo", rank, worldSize, masterAddr: "127.0.0.1", masterPort: port, timeout });
  if (scenario === "collectives") {
    // a float and an int tensor (separate buckets), and 300k floats split over 1 MiB buckets
    const a = torch.tensor([rank + 1, 2 * rank, -rank]);
    const i = torch.tensor([rank, 10], { dtype: "int64" });
    const big = torch.arange(0, 300_000).add(rank * 1000);
    dist.allReduce([a, i, big], "sum", { bucketBytes: 1 << 20 });
    const avg = torch.tensor([rank, 1, 4 * rank]);
    dist.allReduce([avg], "avg");
    const b = torch.full([2, 2], rank);
    const src = worldSize - 1;
    dist.broadcast([b, torch.tensor([rank])], src);
    const gathered = dist.allGather(torch.tensor([[rank, rank * rank]]));
    dist.barrier();
    console.log(
      JSON.stringify({
        rank: dist.getRank(),
        worldSize: dist.getWorldSize(),
        a: a.toArray(),
        i: i.toArray(),
        bigHead: big.slice(0, 0, 3).toArray(),
        bigTail: big.slice(0, 299_997).toArray(),
        bigSum: big.sum(undefined, false, "float64").item(),
        avg: avg.toArray(),
        b: b.toArray(),
        gathered: gathered.map((t) => t.toArray()),
      }),
    );
  } else if (scenario === "gradients") {
    // Diff-Pruning's loop on 5 images (shares of 3+2 or 2+2+1), then every group's scores
    const model = UNet2DModel.fromPretrained(modelDir!);
    const scheduler = new DDPMScheduler({ num_train_timesteps: 20 });
    torch.manualSeed(11);
    const images = torch.rand([5, 1, 16, 16]).mul(2).sub(1);
    const noise = torch.randn([5, 1, 16, 16]);
    const report = accumulateGradients(model, { images, noise, scheduler, thr: 0.3 });
    const graph = DependencyGraph.build(model, unetForward(model));
    const importance = new Importance("diff-pruning", graph);
    const scores = [...pruningGroups(graph)].map((g) => Array.from(importance.of(g)));
    const taylor = new Importance("taylor", graph);
    const taylorScores = [...pruningGroups(graph)].map((g) => Array.from(taylor.of(g)));
    console.log(JSON.stringify({ losses: report.losses, tPrime: report.tPrime, scores, taylorScores }));
  } else if (scenario === "stall") {
    // rank 1 is alive but busy (its event loop blocked) past the timeout; rank 0 must give up
    dist.allReduce([torch.ones([4])]);
    if (rank === 1) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, timeout + 4000);
      process.exit(0);
    }
    reportSecondAllReduce();
    process.exit(0);
  } else if (scenario === "die") {
    // rank 1 exits abruptly before the second all-reduce; the others must fail, not hang
    dist.allReduce([torch.ones([4])]);
    if (rank === 1) process.exit(3);
    reportSecondAllReduce();
  }
  dist.destroyProcessGroup();
}

/** One more all-reduce, printing its error and how long it took to fail (or error null). */
function reportSecondAllReduce(): void {
  const t0 = performance.now();
  try {
    torch.distributed.allReduce([torch.ones([4])]);
    console.log(JSON.stringify({ error: null }));
  } catch (err) {
    console.log(JSON.stringify({ error: (err as Error).message, ms: performance.now() - t0 }));
  }
}
