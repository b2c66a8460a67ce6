/**
 * What a build tells the outside world. The engine never prints; it hands events to an
 * injected logger (the CLI's status line, a JSON stream, a test's array, watch mode).
 */
export type BuildEvent =
  /** How many targets the build will consider. */
  | {readonly type: 'plan'; readonly total: number}
  /** A target found up to date. */
  | {readonly type: 'fresh'; readonly target: string}
  /** A target starts running, with the first reason it is stale. */
  | {
      readonly type: 'start';
      readonly target: string;
      readonly description: string;
      readonly reason: string;
      readonly console: boolean;
    }
  /** Dry run: a target would run. */
  | {readonly type: 'would-run'; readonly target: string; readonly reason: string; readonly action: string}
  | {
      readonly type: 'finish';
      readonly target: string;
      readonly durationMs: number;
      /** The step's buffered output (may be empty). */
      readonly output: string;
      readonly console: boolean;
    }
  | {
      readonly type: 'fail';
      readonly target: string;
      /** The command or `rule <name>` that failed. */
      readonly action: string;
      /** One line: what went wrong. */
      readonly message: string;
      readonly output: string;
      readonly console: boolean;
    }
  /** A target not run because a dependency failed. */
  | {readonly type: 'skip'; readonly target: string; readonly because: string}
  | {readonly type: 'warning'; readonly message: string}
  | {readonly type: 'interrupted'; readonly signal: string};

export interface BuildLogger {
  event(e: BuildEvent): void;
}

export const silentLogger: BuildLogger = {event() {}};
