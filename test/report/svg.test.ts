// SVG line charts: data lands where the axes say, labels are escaped, log scale works.
import assert from "node:assert/strict";
import { test } from "node:test";
import { lineChart } from "../../src/report/index.js";

const polylines = (svg: string): [number, number][][] =>
  [...svg.matchAll(/<polyline[^>]*points="([^"]*)"/g)].map((m) => m[1]!.split(" ").map((p) => p.split(",").map(Number) as [number, number]));

test("points span the plot area, first at the left and bottom, last at the right and top", () => {
  const svg = lineChart([{ name: "a", points: [[0, 0], [5, 5], [10, 10]] }], { width: 400, height: 300 });
  const [line] = polylines(svg);
  assert.equal(line!.length, 3);
  const [[xa, ya], [xb, yb], [xc, yc]] = line!;
  assert.ok(xa! < xb! && xb! < xc!);
  assert.ok(ya! > yb! && yb! > yc!, "y grows upwards");
  assert.ok(Math.abs(xb! - (xa! + xc!) / 2) < 0.2 && Math.abs(yb! - (ya! + yc!) / 2) < 0.2, "linear axes");
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="400" height="300"/);
});

test("a log axis puts 1, 10, 100 at equal distances; non-positive values are dropped", () => {
  const [line] = polylines(lineChart([{ name: "loss", points: [[0, 1], [1, 10], [2, 100], [3, 0]] }], { logY: true }));
  assert.equal(line!.length, 3);
  const [[, y1], [, y10], [, y100]] = line!;
  assert.ok(Math.abs(y1! - y10! - (y10! - y100!)) < 0.2);
});

test("titles and names are escaped; reference lines and a legend are drawn", () => {
  const svg = lineChart(
    [
      { name: "<a>", points: [[0, 1], [1, 2]] },
      { name: "b&c", points: [[0, 2], [1, 1]] },
    ],
    { title: 'x < "y"', hLines: [{ y: 1.5, label: "thr" }], vLines: [{ x: 0.5, label: "T'" }] },
  );
  assert.ok(svg.includes("x &lt; &quot;y&quot;") && svg.includes("&lt;a&gt;") && svg.includes("b&amp;c"));
  assert.equal(polylines(svg).length, 2);
  assert.equal((svg.match(/stroke-dasharray/g) ?? []).length, 2);
  assert.ok(!svg.includes("<script"));
});
