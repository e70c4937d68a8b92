// Explicit memory management, as in TensorFlow.js: tidy() frees what a function created except
// what it returns; keep() lets a tensor outlive its scope. Tensors that live outside every scope
// are handed to a FinalizationRegistry, a backstop that frees them when V8 collects the wrapper
// (registration costs about a microsecond, so tensors inside a scope skip it).
import { native } from "./native.js";
import { Tensor } from "./tensor.js";

const scopes: Tensor[][] = [];

const registry = new FinalizationRegistry<number>((handle) => {
  native.dispose(handle); // a no-op when the tensor was disposed already
});

/** Records a new tensor in the innermost scope, or with the backstop when there is none. */
export function track(t: Tensor): void {
  const scope = scopes[scopes.length - 1];
  if (scope !== undefined) scope.push(t);
  else registry.register(t, t.handle);
}

/** Lets `t` outlive every enclosing tidy() scope; free it yourself with dispose(). */
export function keep<T extends Tensor>(t: T): T {
  if (!t.kept) {
    t.kept = true;
    if (scopes.length > 0) registry.register(t, t.handle);
  }
  return t;
}

function collect(value: unknown, out: Set<Tensor>, seen: Set<object>): void {
  if (value instanceof Tensor) {
    out.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (value instanceof Map) {
    if (seen.has(value)) return;
    seen.add(value);
    for (const v of value.values()) collect(v, out, seen);
  } else if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    if (seen.has(value)) return;
    seen.add(value);
    for (const v of Object.values(value)) collect(v, out, seen);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it, except those it returns (also inside
 * arrays, Maps and plain objects) and those passed to keep(). Scopes nest; returned tensors move
 * to the enclosing scope. `fn` must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Tensor[] = [];
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    native.disposeMany(scope.filter((t) => !t.kept).map((t) => t.handle));
    throw err;
  }
  scopes.pop();
  if (result instanceof Promise) {
    native.disposeMany(scope.filter((t) => !t.kept).map((t) => t.handle));
    throw new Error("tidy() takes a synchronous function: tensors created after an await would escape the scope");
  }
  const returned = new Set<Tensor>();
  collect(result, returned, new Set());
  const garbage: number[] = [];
  for (const t of scope) {
    if (t.kept) continue;
    if (returned.has(t)) track(t);
    else garbage.push(t.handle);
  }
  native.disposeMany(garbage);
  return result;
}

/**
 * `layers` applied in turn to `x`, each intermediate result freed as soon as the next layer has
 * used it (`x` itself stays): at a large batch the next op then reuses memory still in cache.
 * Autograd keeps what backward needs, so this is safe in training too.
 */
export function sequential(x: Tensor, ...layers: ((t: Tensor) => Tensor)[]): Tensor {
  let current = x;
  for (const layer of layers) {
    const next = layer(current);
    if (current !== x && next !== current && !current.kept) current.dispose();
    current = next;
  }
  return current;
}

/** Disposes tensors, arrays of tensors, or objects holding them. */
export function dispose(value: unknown): void {
  const all = new Set<Tensor>();
  collect(value, all, new Set());
  for (const t of all) t.dispose();
}

/** Live native tensors and the bytes their elements take (views count their own elements). */
export function memory(): { numTensors: number; numBytes: number } {
  return native.memory();
}
