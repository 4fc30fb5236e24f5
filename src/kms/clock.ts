/** A source of time, injectable so tests can move past deletion windows and rotation periods. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now() };

export const DAY_MS = 24 * 60 * 60 * 1000;
