/** One subcommand of `virtio-ts`. */
export interface Command {
  /** One line for the help text. */
  readonly summary: string;
  /** Runs the subcommand with the arguments after its name; resolves with the exit status. */
  run(args: readonly string[]): Promise<number>;
}
