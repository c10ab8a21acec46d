import { signStreamToken, streamTokenSecret } from "../domain/stream-token";
import type { Env } from "../env";
import type { StreamToken, StreamTokenInput } from "../schemas/stream-token";

/**
 * Mints a stream token for a tenant: the one place the sub-key route and the operator route
 * go through. A token minted with a key carries it, so it lives only as long as that key.
 */
export async function mintStreamToken(
  env: Env,
  tenantId: string,
  input: StreamTokenInput,
  keyId: string | null = null,
): Promise<StreamToken> {
  const exp = Math.floor(Date.now() / 1000) + input.ttl_seconds;
  const taskIds = input.task_ids ?? null;
  const token = await signStreamToken({ tenantId, taskIds, exp, keyId }, streamTokenSecret(env));
  return { token, expires_at: new Date(exp * 1000).toISOString(), task_ids: taskIds };
}
