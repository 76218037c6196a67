/** Compatibility: the channel contract lives in the core (src/channel.ts). */
export type * from '../src/channel.ts';
