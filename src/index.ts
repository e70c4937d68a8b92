// diffprune's public API.
export * as torch from "./torch/index.js";
