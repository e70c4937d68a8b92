// The CLI's option parsers: plain decimal numbers in range, nothing else (Number("") is 0,
// Number("0x10") is 16, Number("Infinity") is not a count).
import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidArgumentError } from "commander";
import { fraction, learningRate, nonNegativeInt, nonNegativeNumber, oneOf, positiveInt, positiveNumber } from "../../src/cli/args.js";
import { datasetPath } from "../../src/data/index.js";

const GARBAGE = ["", " ", "abc", "NaN", "Infinity", "-Infinity", "1e400", "0x10", "0b1", "1_000", "1,5", "--1", "1.2.3", "5 ", " 5", "e5", "."];

function refuses(parse: (v: string) => unknown, value: string, message: RegExp): void {
  assert.throws(() => parse(value), (err: unknown) => err instanceof InvalidArgumentError && message.test(err.message), `${JSON.stringify(value)} accepted`);
}

test("every numeric parser refuses empty, non-decimal and non-finite values, saying what it got", () => {
  for (const parse of [positiveInt, nonNegativeInt, positiveNumber, nonNegativeNumber, fraction(), fraction(true), learningRate()]) {
    for (const value of GARBAGE) refuses(parse, value, value.trim() === "" ? /got an empty value$/ : /^expected .*, got "/);
  }
});

test("integers: whole, in range, safe", () => {
  assert.equal(positiveInt("3"), 3);
  assert.equal(positiveInt("+7"), 7);
  assert.equal(positiveInt("1e3"), 1000);
  assert.equal(nonNegativeInt("0"), 0);
  for (const v of ["0", "-1", "2.5", "1e-3", "9007199254740993"]) refuses(positiveInt, v, /expected a positive integer, got/);
  for (const v of ["-1", "0.5"]) refuses(nonNegativeInt, v, /expected a non-negative integer, got/);
});

test("fractions: [0, 1) or [0, 1]", () => {
  assert.equal(fraction()("0"), 0);
  assert.equal(fraction()("0.999"), 0.999);
  assert.equal(fraction()(".5"), 0.5);
  refuses(fraction(), "1", /expected a number in \[0, 1\), got 1/);
  refuses(fraction(), "-0.1", /got -0.1/);
  assert.equal(fraction(true)("1"), 1);
  refuses(fraction(true), "1.0001", /expected a number in \[0, 1\]/);
});

test("learning rates: positive and at most 1 (1e30 would make every weight NaN)", () => {
  assert.equal(learningRate()("2e-4"), 2e-4);
  assert.equal(learningRate()("1"), 1);
  for (const v of ["0", "-1e-4", "1e30", "1.5"]) refuses(learningRate(), v, /expected a learning rate in \(0, 1\], got/);
  assert.equal(learningRate(10)("5"), 5);
});

test("non-negative and positive reals", () => {
  assert.equal(nonNegativeNumber("0"), 0);
  assert.equal(positiveNumber("1e-8"), 1e-8);
  refuses(positiveNumber, "0", /expected a positive number, got 0/);
  refuses(nonNegativeNumber, "-0.5", /expected a number >= 0/);
});

test("oneOf names the choices and what it got", () => {
  const parse = oneOf("ddim", "ddpm");
  assert.equal(parse("ddim"), "ddim");
  refuses(parse, "euler", /expected one of ddim, ddpm, got "euler"/);
  refuses(parse, "", /got an empty value/);
});

test("datasetPath: the folder a dataset spec reads", () => {
  assert.equal(datasetPath("folder:/data/imgs"), "/data/imgs");
  assert.equal(datasetPath("cifar10:/data/c"), "/data/c");
  assert.equal(datasetPath("cifar10-test:rel/c"), "rel/c");
  assert.equal(datasetPath("fashion-mnist"), undefined);
  assert.equal(datasetPath("fashion-mnist:test"), undefined);
  assert.equal(datasetPath(undefined), undefined);
});
