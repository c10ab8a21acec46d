/**
 * One structured JSON line per request and per task transition. Callers pass ids and
 * facts only; secrets (keys, tokens, the upstream key) are never handed to this function.
 */
export function logEvent(event: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ event, at: new Date().toISOString(), ...fields }));
}
