// Class labels from the data: Fashion-MNIST's IDX label files, an image folder's class
// subfolders (torchvision's ImageFolder numbering), none from a flat folder; the loader hands
// each batch its labels.
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { DataLoader, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, IDX_LABELS_MAGIC, openDataset, readIdx, Uint8ImageDataset } from "../../src/data/index.js";
import { writePng } from "../../src/io/index.js";
import { scratchDir } from "../helpers/fixtures.js";

const scratch = scratchDir("diffprune-labels-");
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A 4x4 gray PNG of one value at `path`. */
function png(path: string, value: number): void {
  writePng(path, { width: 4, height: 4, channels: 1, data: new Uint8Array(16).fill(value) });
}

const open = (dir: string) => openDataset(`folder:${dir}`, { sampleSize: 4, channels: 1 });

describe("class labels of datasets", () => {
  test("Fashion-MNIST's labels are its IDX label file's, with its 10 class names", () => {
    for (const [spec, file] of [["fashion-mnist", "train"], ["fashion-mnist:test", "t10k"]] as const) {
      const ds = openDataset(spec, { sampleSize: 32, channels: 1 });
      const idx = readIdx(join(FASHION_MNIST_DIR, `${file}-labels-idx1-ubyte.gz`), IDX_LABELS_MAGIC);
      assert.equal(ds.name, spec);
      assert.deepEqual(ds.classes, FASHION_MNIST_CLASSES);
      assert.equal(ds.labels!.length, idx.dims[0]);
      assert.deepEqual(Array.from(ds.labels!.subarray(0, 1000)), Array.from(idx.data.subarray(0, 1000)));
    }
  });

  test("an image folder with one subfolder per class: sorted names numbered 0..K-1, as torchvision's ImageFolder", () => {
    const root = join(scratch, "classes");
    // "empty" has no images but keeps its number (torchvision counts every class folder)
    for (const c of ["cat", "ant", "bee", "empty", ".hidden"]) mkdirSync(join(root, c), { recursive: true });
    mkdirSync(join(root, "bee", "deeper"));
    png(join(root, "cat", "1.png"), 30);
    png(join(root, "ant", "2.png"), 10);
    png(join(root, "ant", "1.png"), 11);
    png(join(root, "bee", "deeper", "x.png"), 20);
    png(join(root, ".hidden", "h.png"), 99);
    const ds = open(root);
    assert.equal(ds.name, `folder:${root}`);
    assert.deepEqual(ds.classes, ["ant", "bee", "cat", "empty"]);
    assert.equal(ds.length, 4);
    assert.deepEqual(Array.from(ds.labels!), [0, 0, 1, 2]);
    // the loader hands a batch its images' labels
    const batch = new DataLoader(ds, { batchSize: 4, seed: 3 }).batch(0, 0);
    const values = batch.images.toArray().filter((_, i) => i % 16 === 0).map((v) => Math.round((v + 1) * 127.5));
    const classOfValue = new Map([[10, 0], [11, 0], [20, 1], [30, 2]]);
    assert.deepEqual(Array.from(batch.labels!), values.map((v) => classOfValue.get(v)));
    batch.images.dispose();
  });

  test("a flat folder, or one with images beside its subfolders, has no labels", () => {
    const flat = join(scratch, "flat");
    mkdirSync(flat);
    png(join(flat, "a.png"), 1);
    png(join(flat, "b.png"), 2);
    const mixed = join(scratch, "mixed");
    mkdirSync(join(mixed, "sub"), { recursive: true });
    png(join(mixed, "a.png"), 1);
    png(join(mixed, "sub", "b.png"), 2);
    for (const dir of [flat, mixed]) {
      const ds = open(dir);
      assert.equal(ds.labels, undefined);
      assert.equal(ds.classes, undefined);
      const batch = new DataLoader(ds, { batchSize: 2 }).batch(0, 0);
      assert.equal(batch.labels, undefined);
      batch.images.dispose();
    }
  });

  test("in-memory datasets check their labels against their classes", () => {
    const images = new Uint8Array(3 * 4);
    const source = { count: 3, channels: 1, height: 2, width: 2 };
    const sample = { sampleSize: 2, channels: 1 };
    const named = new Uint8ImageDataset(images, source, sample, { labels: Int32Array.of(0, 2, 1) });
    assert.deepEqual(named.classes, ["0", "1", "2"], "classes default to the label numbers");
    assert.throws(() => new Uint8ImageDataset(images, source, sample, { labels: Int32Array.of(0, 1) }), /2 labels for 3 images/);
    assert.throws(() => new Uint8ImageDataset(images, source, sample, { labels: Int32Array.of(0, 1, -1) }), /class label -1 is negative/);
    assert.throws(() => new Uint8ImageDataset(images, source, sample, { labels: Int32Array.of(0, 1, 2), classes: ["a", "b"] }), /class label 2 but only 2 classes/);
  });
});
