// A process of the collectives tests (started by collectives.test.ts with DIFFPRUNE_TEST_WORKER
// set; does nothing otherwise, so the test runner may load it). Prints one JSON line of results.
import * as torch from "../../src/torch/index.js";

const spec = process.env.DIFFPRUNE_TEST_WORKER;
if (spec) {
  const { scenario, rank, worldSize, port, timeout } = JSON.parse(spec) as { scenario: string; rank: number; worldSize: number; port: number; timeout: number };
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
  } else if (scenario === "die") {
    // rank 1 exits abruptly before the second all-reduce; the others must fail, not hang
    dist.allReduce([torch.ones([4])]);
    if (rank === 1) process.exit(3);
    const t0 = performance.now();
    try {
      dist.allReduce([torch.ones([4])]);
      console.log(JSON.stringify({ error: null }));
    } catch (err) {
      console.log(JSON.stringify({ error: (err as Error).message, ms: performance.now() - t0 }));
    }
  }
  dist.destroyProcessGroup();
}
