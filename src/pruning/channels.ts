// Channel bookkeeping for the dependency graph: every channel of every prunable tensor dimension
// is an element; elements that must be removed together are joined (union-find). A tensor flowing
// through the traced forward carries a Layout: which axis holds its channels and the element of
// each channel.

/** The channels of a traced tensor: their axis (null once reshapes mixed it with other dims) and element ids. */
export interface Layout {
  axis: number | null;
  ids: number[];
}

export class ChannelSets {
  readonly #parent: number[] = [];
  readonly #frozen = new Set<number>();

  /** `n` new elements, each in a set of its own. */
  fresh(n: number): number[] {
    const ids = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      ids[i] = this.#parent.length;
      this.#parent.push(ids[i]!);
    }
    return ids;
  }

  find(x: number): number {
    const p = this.#parent;
    let root = x;
    while (p[root] !== root) root = p[root]!;
    while (p[x] !== root) {
      const next = p[x]!;
      p[x] = root;
      x = next;
    }
    return root;
  }

  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    this.#parent[rb] = ra;
    if (this.#frozen.delete(rb)) this.#frozen.add(ra);
  }

  /** Joins a[i] with b[i]; the two lists must have the same length. */
  unionAll(a: readonly number[], b: readonly number[]): void {
    for (let i = 0; i < a.length; i++) this.union(a[i]!, b[i]!);
  }

  /** Marks the sets of these elements as not prunable (their channels have a fixed meaning). */
  freeze(ids: readonly number[]): void {
    for (const id of ids) this.#frozen.add(this.find(id));
  }

  isFrozen(id: number): boolean {
    return this.#frozen.has(this.find(id));
  }
}
