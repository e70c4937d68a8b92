// Numbers as the commands print them.

/** A count in millions or billions, three decimals: 1.113M, 0.258G. */
export const formatCount = (n: number, unit: "M" | "G"): string => `${(n / (unit === "M" ? 1e6 : 1e9)).toFixed(3)}${unit}`;
