// Seeded JS randomness for tests, independent of torch's generator: the library's own.
export { mulberry32 } from "../../src/metrics/bootstrap.js";
