// An error about a caller's option. The library names its options as the function calls them
// (roundTo); the CLI renders the same message with its flags (--round-to), so neither layer's
// messages speak the other's language.

/** Renders an option's name: the library's own by default, a flag in the CLI. */
export type OptionName = (option: string) => string;

/** A message that names options. */
export type OptionMessage = (name: OptionName) => string;

export class OptionError extends Error {
  override name = "OptionError";

  /** `describe` builds the message from the names of the options it mentions. */
  constructor(readonly describe: OptionMessage) {
    super(describe((option) => option));
  }
}
