/** The metrics `cameras eval` knows (apart from their code, so the command line is built without loading them). */
export const METRICS = ['pointing', 'density', 'insdel', 'confidence', 'road'] as const;
/** What `cameras eval` computes unless --metrics says otherwise. */
export const DEFAULT_METRICS = ['pointing', 'density', 'insdel'];
export type Metric = (typeof METRICS)[number];
