// Pruning groups: for each conv/linear layer whose output channels are not yet covered, every
// tensor index that must go when one of its output channels goes (Torch-Pruning's
// get_all_groups). A group is indexed by its root layer's output channels.
import type { DependencyGraph, Layer, Slot } from "./graph.js";

/** The indices of one tensor dimension in a group, each with the root channel it belongs to. */
export interface GroupMember {
  slot: Slot;
  positions: number[];
  roots: number[];
}

export interface PruningGroup {
  root: Layer;
  /** The root's output channels: the group's index space. */
  channels: number;
  /** The element set of each root channel. */
  sets: number[];
  members: GroupMember[];
  /** Layers whose output channels are in the group (the root first). */
  layers: Layer[];
  /** Equal-size channel blocks that must lose the same number of channels (GroupNorm groups, heads). */
  channelGroups: number;
  /** Heads, when the group's channels were split into attention heads. */
  heads: number;
  /** Why the group cannot be pruned, or null. */
  blocked: string | null;
}

export const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number): number => (a / gcd(a, b)) * b;

/** Whether `layer` is one of the `ignored` module paths or inside one. */
export const isIgnored = (layer: string, ignored: readonly string[]): boolean =>
  ignored.some((name) => name === "" || layer === name || layer.startsWith(`${name}.`));

/** The layers in the order Torch-Pruning visits group roots (its node order), then any it never reaches. */
function rootOrder(graph: DependencyGraph): Layer[] {
  const rank = new Map(graph.moduleOrder.map((name, i) => [name, i]));
  const at = (l: Layer): number => rank.get(l.name) ?? Infinity;
  return [...graph.layers].sort((a, b) => at(a) - at(b));
}

/** Every element of every slot, filed under its element set. Removals never change a set's elements. */
const elementIndex = new WeakMap<DependencyGraph, Map<number, { slot: Slot; id: number }[]>>();
function slotIndex(graph: DependencyGraph): Map<number, { slot: Slot; id: number }[]> {
  let bySet = elementIndex.get(graph);
  if (bySet) return bySet;
  bySet = new Map();
  for (const slot of graph.slots) {
    for (const id of slot.ids) {
      const s = graph.sets.find(id);
      let list = bySet.get(s);
      if (!list) bySet.set(s, (list = []));
      list.push({ slot, id });
    }
  }
  elementIndex.set(graph, bySet);
  return bySet;
}

/** Where each element sits in its slot now; rebuilt when a removal replaced the slot's ids. */
const positionCache = new WeakMap<Slot, { ids: number[]; at: Map<number, number> }>();
function positionOf(slot: Slot, id: number): number | undefined {
  let cached = positionCache.get(slot);
  if (!cached || cached.ids !== slot.ids) positionCache.set(slot, (cached = { ids: slot.ids, at: new Map(slot.ids.map((x, i) => [x, i])) }));
  return cached.at.get(id);
}

/** The group of `root`'s output channels, from the graph as it is now (after any removals). */
export function groupOf(graph: DependencyGraph, root: Layer, ignored: readonly string[] = []): PruningGroup {
  const { sets } = graph;
  const bySet = slotIndex(graph);
  const layerByOutSlot = new Map(graph.layers.map((l) => [l.out, l]));
  const rootSets = root.out.ids.map((id) => sets.find(id));
  const members = new Map<Slot, GroupMember>();
  rootSets.forEach((s, rootIndex) => {
    for (const { slot, id } of bySet.get(s) ?? []) {
      const position = positionOf(slot, id);
      if (position === undefined) continue; // removed by an earlier group
      let m = members.get(slot);
      if (!m) members.set(slot, (m = { slot, positions: [], roots: [] }));
      m.positions.push(position);
      m.roots.push(rootIndex);
    }
  });
  const layers = [...members.keys()].map((slot) => layerByOutSlot.get(slot)).filter((l): l is Layer => l !== undefined);
  const memberSets = new Set(rootSets);

  let channelGroups = 1;
  for (const norm of graph.norms) if (norm.ids.some((id) => memberSets.has(sets.find(id)))) channelGroups = lcm(channelGroups, norm.groups);
  let heads = 1;
  for (const m of members.values()) for (const p of m.positions) heads = Math.max(heads, graph.headSplits.get(m.slot.ids[p]!) ?? 1);
  channelGroups = lcm(channelGroups, heads);

  const channels = rootSets.length;
  let blocked: string | null = null;
  const ignoredLayer = layers.find((l) => isIgnored(l.name, ignored));
  if (ignoredLayer) blocked = `${ignoredLayer.name} is ignored`;
  else if (rootSets.some((s) => sets.isFrozen(s))) blocked = "its channels reach the model's output or an op that fixes them";
  else if (memberSets.size !== channels) blocked = "its channels are tied to each other";
  else if (channels % channelGroups !== 0) blocked = `${channels} channels do not split into ${channelGroups} equal channel groups`;
  return { root, channels, sets: rootSets, members: [...members.values()], layers, channelGroups, heads, blocked };
}

/**
 * Torch-Pruning's get_all_groups: roots in its node order, each layer whose output channels an
 * earlier group holds skipped. Lazy, as in Torch-Pruning: each group is computed when it is
 * reached, so channels removed between two steps of the iteration are gone from the next group.
 */
export function* pruningGroups(graph: DependencyGraph, ignored: readonly string[] = []): Generator<PruningGroup> {
  const visited = new Set<Layer>();
  for (const root of rootOrder(graph)) {
    if (visited.has(root)) continue;
    const group = groupOf(graph, root, ignored);
    for (const l of group.layers) visited.add(l);
    yield group;
  }
}
